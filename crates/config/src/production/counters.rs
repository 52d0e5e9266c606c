//! A model's `counts`: the raw counters of good, rejected and total pieces.

use backplane_model::DataType;

use super::model::Attributes;
use crate::reader::{Item, with_article};

/// `counts = { good, reject, total }`: at most two of the three.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CountsSpec {
    pub good: Option<CounterSpec>,
    pub reject: Option<CounterSpec>,
    pub total: Option<CounterSpec>,
}

/// One raw counter.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSpec {
    pub attribute: String,
    /// The counter wraps to 0 at this value (65536 for 16 bits, 4294967296 for 32).
    pub rollover: Option<u64>,
}

pub(super) fn read_counts(item: &Item<'_>, attribute: Attributes<'_>) -> Option<CountsSpec> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let mut spec = CountsSpec::default();
    for role in ["good", "reject", "total"] {
        let Some(item) = t.optional_item(role) else {
            continue;
        };
        let counter = read_counter(&item, attribute);
        ok &= counter.is_some();
        match role {
            "good" => spec.good = counter,
            "reject" => spec.reject = counter,
            _ => spec.total = counter,
        }
    }
    let given = ["good", "reject", "total"].iter().filter(|k| t.has(k)).count();
    if given == 0 {
        item.error(
            "`counts` names no counter",
            Some("set `good` and `reject`, or `total` and `reject`, e.g. `counts = { good = \"good_count\", reject = \"reject_count\" }`".to_owned()),
        );
        ok = false;
    } else if given == 3 {
        t.error(
            "total",
            "`counts` sets `good`, `reject` and `total`: two of them determine the third",
            Some("remove one; total = good + reject".to_owned()),
        );
        ok = false;
    } else if given == 1 && t.has("reject") {
        t.error(
            "reject",
            "`reject` alone gives no production count",
            Some("add `good` or `total`".to_owned()),
        );
        ok = false;
    }
    t.finish();
    ok.then_some(spec)
}

fn read_counter(item: &Item<'_>, attribute: Attributes<'_>) -> Option<CounterSpec> {
    let numeric = |t: DataType| t.is_numeric_scalar();
    if item.as_str().is_some() {
        let attr = attribute.get(item, "a counter", numeric, "a number")?;
        return Some(CounterSpec {
            attribute: attr.name.clone(),
            rollover: None,
        });
    }
    let Some(mut t) = item.as_table() else {
        item.error(
            format!(
                "expected an attribute name or a table, found {}",
                with_article(item.type_name())
            ),
            Some(
                "write `good = \"good_count\"` or `good = { attribute = \"good_count\", rollover = 65536 }`"
                    .to_owned(),
            ),
        );
        return None;
    };
    let attr = t
        .required_item("attribute")
        .and_then(|item| attribute.get(&item, "a counter", numeric, "a number"));
    let mut ok = true;
    let rollover = t.optional_item("rollover").and_then(|item| {
        let n = item.expect_u64();
        match n {
            Some(n) if n >= 2 => Some(n),
            Some(n) => {
                item.error(
                    format!("`rollover` must be at least 2, found {n}"),
                    Some("the value at which the counter wraps to 0: 65536 for 16 bits, 4294967296 for 32 bits".to_owned()),
                );
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        }
    });
    t.finish();
    let attr = attr?;
    ok.then(|| CounterSpec {
        attribute: attr.name.clone(),
        rollover,
    })
}
