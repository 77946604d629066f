//! The topology as Markdown tables and as a Mermaid flowchart.

use super::{Direction, Topology};
use std::collections::BTreeMap;
use std::fmt::Write;

impl Topology {
    /// The topology as Markdown: one table per kind of node, empty kinds left out.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let mut table = |title: &str, head: &[&str], rows: Vec<Vec<String>>| {
            if rows.is_empty() {
                return;
            }
            let _ = writeln!(out, "## {title}\n");
            let _ = writeln!(out, "| {} |", head.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
            for row in rows {
                let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            out.push('\n');
        };
        table(
            "Events",
            &["event", "version", "extends", "Rust type"],
            self.events
                .iter()
                .map(|e| {
                    vec![
                        code(&e.name),
                        e.version.to_string(),
                        list(&e.ancestors),
                        code(&e.rust_name),
                    ]
                })
                .collect(),
        );
        table(
            "Handlers",
            &[
                "handler",
                "event",
                "priority",
                "kind",
                "policy",
                "publishes",
                "source",
            ],
            self.handlers
                .iter()
                .map(|h| {
                    let mut policy = Vec::new();
                    if let Some(ms) = h.timeout_ms {
                        policy.push(format!("timeout {ms} ms"));
                    }
                    if h.retries > 0 {
                        policy.push(format!("{} retries", h.retries));
                    }
                    if h.on_error {
                        policy.push("on_error".to_owned());
                    }
                    vec![
                        code(&h.name),
                        format!("{} v{}", code(&h.event), h.event_version),
                        h.priority.to_string(),
                        format!(
                            "{}{}",
                            if h.is_async { "async" } else { "sync" },
                            if h.registered { " fn" } else { " subscription" }
                        ),
                        dash(policy.join(", ")),
                        list(&h.publishes),
                        dash(h.location.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
        );
        table(
            "Middleware (in order)",
            &["middleware", "kind", "applies to"],
            self.middleware
                .iter()
                .map(|m| {
                    vec![
                        code(&m.name),
                        if m.is_sync { "sync" } else { "async" }.to_owned(),
                        m.scope.as_deref().map_or("every event".to_owned(), code),
                    ]
                })
                .collect(),
        );
        table(
            "Upcasters",
            &["upcaster", "event", "from", "to", "source"],
            self.upcasters
                .iter()
                .map(|u| {
                    vec![
                        code(&u.name),
                        code(&u.event),
                        format!("v{}", u.from_version),
                        format!("v{}", u.to_version),
                        dash(u.location.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
        );
        table(
            "Sagas",
            &["saga", "started by", "steps"],
            self.sagas
                .iter()
                .map(|s| vec![code(&s.name), list(&s.starts), list(&s.steps)])
                .collect(),
        );
        table(
            "Wire",
            &["direction", "event (and derived)", "via", "mode", "target"],
            self.routes
                .iter()
                .map(|r| {
                    vec![
                        match r.direction {
                            Direction::Out => "out",
                            Direction::In => "in",
                        }
                        .to_owned(),
                        code(&r.event),
                        r.via.clone(),
                        r.mode.clone(),
                        code(&r.target),
                    ]
                })
                .collect(),
        );
        table(
            "Publishers",
            &["event", "published by"],
            self.publishers
                .iter()
                .map(|p| vec![code(&p.event), p.by.clone()])
                .collect(),
        );
        out
    }

    /// The topology as a Mermaid flowchart (` ```mermaid ` in Markdown renders it): events as
    /// boxes, handlers as rounded nodes, `is a` edges to parents, upcasts as thick edges,
    /// sagas as hexagons, the wire as cylinders, and publishers feeding their events.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        let mut ids = Ids::default();
        for event in &self.events {
            let id = ids.event(&event.name, event.version);
            let _ = writeln!(
                out,
                "    {id}[\"{} v{}\"]",
                escape(&event.name),
                event.version
            );
        }
        for event in &self.events {
            let id = ids.event(&event.name, event.version);
            if let Some(parent) = event.ty.parent() {
                let parent = ids.event(parent.name(), parent.version());
                let _ = writeln!(out, "    {id} -. is a .-> {parent}");
            }
        }
        for upcaster in &self.upcasters {
            let (from, to) = (
                ids.event(&upcaster.event, upcaster.from_version),
                ids.event(&upcaster.event, upcaster.to_version),
            );
            let _ = writeln!(out, "    {from} == upcast ==> {to}");
        }
        for (index, handler) in self.handlers.iter().enumerate() {
            let event = ids.event(&handler.event, handler.event_version);
            let kind = if handler.is_async { "async" } else { "sync" };
            let _ = writeln!(
                out,
                "    h{index}([\"{}<br/>{kind}, priority {}\"])",
                escape(&handler.name),
                handler.priority
            );
            let _ = writeln!(out, "    {event} --> h{index}");
            for published in &handler.publishes {
                if let Some(target) = ids.event_by_name(published, &self.events) {
                    let _ = writeln!(out, "    h{index} -. publishes .-> {target}");
                }
            }
        }
        for (index, saga) in self.sagas.iter().enumerate() {
            let _ = writeln!(out, "    s{index}{{{{\"saga {}\"}}}}", escape(&saga.name));
            for (label, events) in [("starts", &saga.starts), ("step", &saga.steps)] {
                for name in events {
                    if let Some(event) = ids.event_by_name(name, &self.events) {
                        let _ = writeln!(out, "    {event} -- {label} --> s{index}");
                    }
                }
            }
        }
        let mut wires: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for route in &self.routes {
            let key = (route.via.clone(), route.mode.clone(), route.target.clone());
            let next = wires.len();
            let wire = *wires.entry(key).or_insert_with(|| {
                let _ = writeln!(
                    out,
                    "    w{next}[(\"{} {} {}\")]",
                    escape(&route.via),
                    escape(&route.mode),
                    escape(&route.target)
                );
                next
            });
            let event = ids.event(&route.event, route.ty.version());
            match route.direction {
                Direction::Out => {
                    let _ = writeln!(out, "    {event} --> w{wire}");
                }
                Direction::In => {
                    let _ = writeln!(out, "    w{wire} --> {event}");
                }
            }
        }
        for (index, publisher) in self.publishers.iter().enumerate() {
            if publisher.derived_too {
                continue; // a route from the wire, drawn above
            }
            let event = ids.event(&publisher.event, publisher.ty.version());
            let _ = writeln!(
                out,
                "    p{index}>\"{}\"] --> {event}",
                escape(&publisher.by)
            );
        }
        out
    }
}

/// Mermaid ids for events: `e0`, `e1`, … by (name, version).
#[derive(Default)]
struct Ids(BTreeMap<(String, u32), String>);

impl Ids {
    fn event(&mut self, name: &str, version: u32) -> String {
        let next = self.0.len();
        self.0
            .entry((name.to_owned(), version))
            .or_insert_with(|| format!("e{next}"))
            .clone()
    }

    /// The newest version of an event known by name only.
    fn event_by_name(&mut self, name: &str, events: &[super::EventNode]) -> Option<String> {
        let version = events
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.version)
            .max()?;
        Some(self.event(name, version))
    }
}

fn code(text: &str) -> String {
    format!("`{text}`")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "–".to_owned();
    }
    items.iter().map(|i| code(i)).collect::<Vec<_>>().join(", ")
}

fn dash(text: String) -> String {
    if text.is_empty() {
        "–".to_owned()
    } else {
        text
    }
}

/// Text inside a quoted Mermaid label.
fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
}
