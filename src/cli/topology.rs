//! `condmon topology`: what this configuration runs, as the truth about topic names.

use super::ConfigArgs;
use crate::state::StoreName;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    print!("{}", describe(&config));
    Ok(())
}

pub fn describe(config: &crate::config::Config) -> String {
    let t = &config.topics;
    let mut out = String::new();
    out.push_str(&format!(
        "Topics ({} partitions each, replication {}):\n",
        t.partitions, t.replication_factor
    ));
    for spec in t.all() {
        out.push_str(&format!(
            "  {:<8} {:<24} cleanup.policy={}\n",
            spec.role,
            spec.name,
            spec.cleanup.as_str()
        ));
    }
    out.push_str("\nStores (RocksDB column families, one set per input partition N):\n");
    for store in StoreName::ALL {
        out.push_str(&format!("  {}.N\n", store.as_str()));
    }
    out.push_str("  meta (input offsets and counters, written in the same batch as the state)\n");
    out.push_str(&format!(
        "\nOperators (per partition N of {items}, {payments}, {aging}, {customers}, {history}):\n\
         \x20 decode (Avro, Confluent wire format) -> validate -> customers.N (apply)\n\
         \x20 -> reconcile (rules: {rules}) -> timers-by-due.N / timers-by-key.N\n\
         \x20 -> {actions}, {escalations}, {conditions}; refused records -> {dlq}\n\
         \x20 timer tick every {tick} ms -> reconcile the customers whose timers are due\n\
         Global table (every instance reads all of {fx}):\n\
         \x20 exchange rates -> reconcile the customers of customers-by-currency.N they convert\n",
        items = t.items,
        payments = t.payments,
        aging = t.aging,
        customers = t.customers,
        history = t.history,
        rules = config.rules_file.display(),
        actions = t.actions,
        escalations = t.escalations,
        conditions = t.conditions,
        fx = t.fx_rates,
        dlq = t.dead_letter,
        tick = config.pipeline.tick_ms,
    ));
    out
}
