//! The order state machine drawn in `docs/architecture.md` is the one the code enforces: every
//! arrow of the mermaid diagram is a transition `OrderState::can_become` allows, and every
//! allowed transition is drawn.

use std::collections::BTreeSet;

use iap_domain::OrderState;

const ARCHITECTURE: &str = include_str!("../../../docs/architecture.md");

/// The `A --> B` edges of the `stateDiagram-v2` block, start and end markers left out.
fn drawn_edges() -> BTreeSet<(OrderState, OrderState)> {
    let block = ARCHITECTURE
        .split("```mermaid")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.trim_start().starts_with("stateDiagram-v2"))
        .expect("docs/architecture.md has a stateDiagram-v2 mermaid block");
    let mut edges = BTreeSet::new();
    for line in block.lines().map(str::trim) {
        let Some((from, rest)) = line.split_once("-->") else {
            continue;
        };
        let to = rest.split(':').next().unwrap_or_default();
        let (from, to) = (from.trim(), to.trim());
        if from == "[*]" || to == "[*]" {
            continue;
        }
        let parse = |name: &str| {
            name.parse::<OrderState>()
                .unwrap_or_else(|e| panic!("diagram line {line:?}: {e}"))
        };
        assert!(
            edges.insert((parse(from), parse(to))),
            "edge drawn twice: {line}"
        );
    }
    edges
}

#[test]
fn the_documented_state_diagram_is_exactly_can_become() {
    let drawn = drawn_edges();
    let allowed: BTreeSet<_> = OrderState::ALL
        .iter()
        .flat_map(|&from| OrderState::ALL.iter().map(move |&to| (from, to)))
        .filter(|&(from, to)| from.can_become(to))
        .collect();
    let undrawn: Vec<_> = allowed.difference(&drawn).collect();
    let forbidden: Vec<_> = drawn.difference(&allowed).collect();
    assert!(
        undrawn.is_empty() && forbidden.is_empty(),
        "allowed but not drawn: {undrawn:?}; drawn but not allowed: {forbidden:?}"
    );
}

#[test]
fn every_state_appears_in_the_diagram() {
    let drawn = drawn_edges();
    for state in OrderState::ALL {
        assert!(
            drawn
                .iter()
                .any(|&(from, to)| from == *state || to == *state),
            "{state} is missing from the diagram"
        );
    }
}
