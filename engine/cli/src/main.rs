fn main() {
    std::process::exit(idflow::cli::main());
}
