//! The SQL text each poll sends, per dialect; pure.
//!
//! The condition selects the rows after the watermark:
//! `w IS NOT NULL AND (w > :key OR (w = :key AND t > :tiebreak))` with a tiebreak,
//! `w > :key` without; with `settle`, also `time <= now - settle`. Rows come in
//! `ORDER BY w, t LIMIT batch`. Watermark values are always bound parameters; column
//! names (checked by the configuration to be plain identifiers) are quoted.

use crate::config::{Dialect, SqlSettings, Target};
use crate::watermark::{Mark, Watermark};

/// One poll's statement and its parameters, in binding order.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub text: String,
    pub params: Vec<Mark>,
}

fn quote(dialect: Dialect, name: &str) -> String {
    let q = match dialect {
        Dialect::Postgres => '"',
        Dialect::MySql => '`',
    };
    name.split('.')
        .map(|part| format!("{q}{part}{q}"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Builds the statement reading up to `settings.batch` rows after `after`, selecting
/// the bound `columns` (table mode) and the source's own.
pub fn statement(settings: &SqlSettings, columns: &[&str], after: Option<&Watermark>) -> Statement {
    let d = settings.dialect;
    let w = quote(d, &settings.watermark);
    let mut params = Vec::new();
    let param = |mark: &Mark, params: &mut Vec<Mark>| -> String {
        params.push(mark.clone());
        match d {
            Dialect::Postgres => {
                let n = params.len();
                match mark {
                    Mark::Int(_) => format!("CAST(CAST(${n} AS text) AS bigint)"),
                    Mark::Time(_) => format!("CAST(CAST(${n} AS text) AS timestamptz)"),
                    Mark::Text(_) => format!("CAST(${n} AS text)"),
                }
            }
            Dialect::MySql => "?".into(),
        }
    };
    let mut cond = format!("{w} IS NOT NULL");
    if let Some(after) = after {
        let k = param(&after.key, &mut params);
        match (&settings.tiebreak, &after.tiebreak) {
            (Some(tb), Some(tmark)) => {
                let t = quote(d, tb);
                // MySQL's `?` are positional: the key is bound twice there.
                let k2 = match d {
                    Dialect::Postgres => k.clone(),
                    Dialect::MySql => param(&after.key, &mut params),
                };
                let tp = param(tmark, &mut params);
                cond.push_str(&format!(" AND ({w} > {k} OR ({w} = {k2} AND {t} > {tp}))"));
            }
            _ => cond.push_str(&format!(" AND {w} > {k}")),
        }
    }
    if let Some(time) = settings.time.as_deref().filter(|_| !settings.settle.is_zero()) {
        let micros = settings.settle.as_micros();
        let now = match d {
            Dialect::Postgres => format!("now() - interval '{micros} microseconds'"),
            Dialect::MySql => format!("NOW(6) - INTERVAL {micros} MICROSECOND"),
        };
        cond.push_str(&format!(" AND {} <= {now}", quote(d, time)));
    }
    let mut order = w.clone();
    if let Some(tb) = &settings.tiebreak {
        order.push_str(", ");
        order.push_str(&quote(d, tb));
    }
    let body = match &settings.target {
        Target::Table(table) => {
            let mut all: Vec<&str> = Vec::new();
            for c in columns.iter().copied().chain(settings.own_columns()) {
                if !all.contains(&c) {
                    all.push(c);
                }
            }
            let list: Vec<String> = all.iter().map(|c| quote(d, c)).collect();
            format!("SELECT {} FROM {} WHERE {cond}", list.join(", "), quote(d, table))
        }
        Target::Query(q) => q.replacen("{watermark}", &format!("({cond})"), 1),
    };
    Statement {
        text: format!("{body} ORDER BY {order} LIMIT {}", settings.batch),
        params,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use backplane_model::Timestamp;

    use super::*;

    fn settings(body: &str) -> SqlSettings {
        let (s, errors) = backplane_testkit::settings::parse(body, crate::config::parse_settings);
        assert!(errors.is_empty(), "{errors:?}");
        s.unwrap()
    }

    #[test]
    fn the_first_poll_has_no_key_and_later_polls_bind_it() {
        let s =
            settings("url = \"postgresql://h/db\"\ntable = \"lims.results\"\nwatermark = \"id\"\nbatch = 50");
        let first = statement(&s, &["temp", "id"], None);
        assert_eq!(
            first.text,
            "SELECT \"temp\", \"id\" FROM \"lims\".\"results\" WHERE \"id\" IS NOT NULL ORDER BY \"id\" LIMIT 50"
        );
        assert!(first.params.is_empty());
        let after = Watermark {
            key: Mark::Int(7),
            tiebreak: None,
        };
        let next = statement(&s, &["temp"], Some(&after));
        assert!(
            next.text
                .contains("AND \"id\" > CAST(CAST($1 AS text) AS bigint) ORDER BY"),
            "{}",
            next.text
        );
        assert_eq!(next.params, [Mark::Int(7)]);
    }

    #[test]
    fn a_time_watermark_with_tiebreak_and_settle_on_mysql_binds_positionally() {
        let mut s = settings(
            "url = \"mysql://h/db\"\nquery = \"SELECT r.ts, r.id, r.v FROM results r WHERE {watermark}\"\nwatermark = \"r.ts\"\ntiebreak = \"r.id\"\ntime = \"r.ts\"\nsettle = \"2s\"",
        );
        s.batch = 10;
        let t = Timestamp::from_unix_nanos(1_000);
        let after = Watermark {
            key: Mark::Time(t),
            tiebreak: Some(Mark::Int(3)),
        };
        let st = statement(&s, &["v"], Some(&after));
        assert_eq!(
            st.text,
            "SELECT r.ts, r.id, r.v FROM results r WHERE (`r`.`ts` IS NOT NULL AND (`r`.`ts` > ? OR (`r`.`ts` = ? AND `r`.`id` > ?)) AND `r`.`ts` <= NOW(6) - INTERVAL 2000000 MICROSECOND) ORDER BY `r`.`ts`, `r`.`id` LIMIT 10"
        );
        assert_eq!(st.params, [Mark::Time(t), Mark::Time(t), Mark::Int(3)]);
        assert_eq!(s.settle, Duration::from_secs(2));
    }

    #[test]
    fn a_watermark_value_is_never_written_into_the_text() {
        let s = settings("url = \"postgresql://h/db\"\ntable = \"t\"\nwatermark = \"code\"");
        let evil = Watermark {
            key: Mark::Text("x'; DROP TABLE t; --".into()),
            tiebreak: None,
        };
        let st = statement(&s, &[], Some(&evil));
        assert!(!st.text.contains("DROP"));
        assert_eq!(st.params.len(), 1);
    }
}
