fn main() -> anyhow::Result<()> {
    condmon::cli::main()
}
