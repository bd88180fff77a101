//! `condmon topology`: what this configuration runs, as the truth about topic names.

use super::ConfigArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// `text` for people, `json` for tools, `dot` for Graphviz (`| dot -Tsvg > topology.svg`).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Dot,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    match args.format {
        Format::Text => print!("{}", describe(&config)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&as_json(&config))?),
        Format::Dot => print!("{}", as_dot(&config)),
    }
    Ok(())
}

/// The topology as data: every topic with its role and settings, every store with its
/// changelog, and the flows between them and the operator.
pub fn as_json(config: &crate::config::Config) -> serde_json::Value {
    let topics: Vec<serde_json::Value> = crate::pipeline::changelog::topic_specs(config)
        .into_iter()
        .map(|spec| {
            let properties: serde_json::Map<String, serde_json::Value> = spec
                .cleanup
                .properties()
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            serde_json::json!({
                "name": spec.name,
                "role": spec.role,
                "stream": spec.stream.map(|s| s.as_str()),
                "partitions": config.topics.partitions,
                "properties": properties,
            })
        })
        .collect();
    let stores: Vec<serde_json::Value> = crate::pipeline::STORES
        .iter()
        .map(|spec| {
            serde_json::json!({
                "name": spec.name.as_str(),
                "column_family": format!("{}.N", spec.name.as_str()),
                "changelog": spec
                    .changelogged
                    .then(|| crate::pipeline::changelog::topic(config, spec.name)),
                "what": spec.what,
            })
        })
        .collect();
    serde_json::json!({
        "group_id": config.kafka.group_id,
        "partitions": config.topics.partitions,
        "rules_file": config.rules_file.display().to_string(),
        "tick_ms": config.pipeline.tick_ms,
        "topics": topics,
        "stores": stores,
    })
}

/// The topology as a Graphviz graph: topics (by role) → the operator → topics, the operator's
/// stores and their changelogs.
pub fn as_dot(config: &crate::config::Config) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
    let mut out = String::from(
        "digraph condmon {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  \
         operator [label=\"condmon operator\\n(per input partition N)\", shape=box, style=bold];\n",
    );
    for spec in crate::pipeline::changelog::topic_specs(config) {
        let name = quote(&spec.name);
        out.push_str(&format!(
            "  {name} [shape=cds, label={}];\n",
            quote(&format!("{}\\n{}", spec.name, spec.role))
        ));
        let edge = match spec.role {
            "input" | "global" => format!("  {name} -> operator;\n"),
            "internal" => format!("  operator -> {name};\n  {name} -> operator;\n"),
            "changelog" => continue,
            _ => format!("  operator -> {name};\n"),
        };
        out.push_str(&edge);
    }
    for spec in crate::pipeline::STORES {
        let store = quote(&format!("{}.N", spec.name.as_str()));
        out.push_str(&format!(
            "  {store} [shape=cylinder];\n  operator -> {store} [dir=both];\n"
        ));
        if spec.changelogged {
            let log = quote(&crate::pipeline::changelog::topic(config, spec.name));
            out.push_str(&format!("  {store} -> {log} [style=dashed];\n"));
        }
    }
    out.push_str("}\n");
    out
}

pub fn describe(config: &crate::config::Config) -> String {
    let t = &config.topics;
    let mut out = String::new();
    out.push_str(&format!(
        "Topics ({} partitions each, replication {}):\n",
        t.partitions, t.replication_factor
    ));
    for spec in crate::pipeline::changelog::topic_specs(config) {
        let properties: Vec<String> = spec
            .cleanup
            .properties()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "  {:<9} {:<32} {}\n",
            spec.role,
            spec.name,
            properties.join(" ")
        ));
    }
    out.push_str(
        "\nStores (declared by the operator; RocksDB column families, one set per input \
         partition N;\nwritten in one batch with the input offsets):\n",
    );
    for spec in crate::pipeline::STORES {
        let log = if spec.changelogged {
            format!(
                "changelog {}",
                crate::pipeline::changelog::topic(config, spec.name)
            )
        } else {
            "local, rebuilt on restore".into()
        };
        out.push_str(&format!(
            "  {:<24} {}\n  {:<24}   [{log}]\n",
            format!("{}.N", spec.name.as_str()),
            spec.what,
            ""
        ));
    }
    out.push_str(&format!(
        "\nOperators (per partition N of {items}, {payments}, {aging}, {customers}, {history}, \
         {agency}, {children}, {commands}, {conversations}):\n\
         \x20 decode (Avro, Confluent wire format) -> validate -> ledger.N, actions.N, conversations.N (apply a ledger event;\n\
         \x20 execute a command, all or nothing; take a conversation: promises, call actions, disputes)\n\
         \x20 -> reconcile (rules: {rules}) -> timers.N / timers-by-due.N,\n\
         \x20    customers-by-currency.N, customers-by-owner.N, customers-by-parent.N\n\
         \x20 -> {actions}, {escalations}, {conditions}, {scores}, {results}, {notifications},\n\
         \x20    {correspondence}, {requests}, {promises}, {decisions}; refused records -> {dlq}\n\
         \x20 timer tick every {tick} ms -> reconcile the customers whose timers are due (ageing,\n\
         \x20    plan steps, reminders, letters' runs, promise deadlines)\n\
         Global tables (every instance reads all of {fx} and {rules_topic}):\n\
         \x20 exchange rates -> reconcile the customers of customers-by-currency.N they convert\n\
         \x20 rule documents (rules, calendars, owners) -> reconcile the customers they concern\n",
        items = t.items,
        payments = t.payments,
        aging = t.aging,
        customers = t.customers,
        history = t.history,
        agency = t.credit_agency,
        children = t.child_figures,
        commands = t.action_commands,
        conversations = t.conversations,
        rules = config.rules_file.display(),
        actions = t.actions,
        escalations = t.escalations,
        conditions = t.conditions,
        scores = t.risk_scores,
        results = t.command_results,
        notifications = t.notifications,
        correspondence = t.correspondence,
        requests = t.requests,
        promises = t.promise_status,
        decisions = t.dunning_decisions,
        fx = t.fx_rates,
        rules_topic = t.rules,
        dlq = t.dead_letter,
        tick = config.pipeline.tick_ms,
    ));
    out
}
