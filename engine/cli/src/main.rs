// Sync allocates and frees many small strings and maps per object: mimalloc does that work in
// about half the time glibc's malloc takes (a tenth of a full sync), and frees across threads
// without the arenas' growth.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
