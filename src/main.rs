// mimalloc: the hot path allocates small, short-lived values per record (decoded states,
// events); measured faster than the system allocator (README, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    condmon::cli::main()
}
