fn main() {
    // `idflow plan | head` ends quietly when the reader goes, as Unix tools do: the default
    // SIGPIPE disposition, instead of Rust's (ignored, then a panic on the failed write).
    #[cfg(unix)]
    // SAFETY: sets a signal's disposition at start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(idflow::main());
}
