fn main() {
    std::process::exit(idflow::main());
}
