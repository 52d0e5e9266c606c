//! Derived attributes: model attributes computed from other attributes of the same asset
//! or its children, declared with `expr` on the model's attribute (see docs/derived.md).
//!
//! - [`parse`]: CEL's parser, bounded in length and depth, under `catch_unwind`.
//! - [`check`]: names, types, units and arity, into a [`Compiled`](check::Compiled) tree;
//!   [`ExprChecker`] runs it for `backplane check` (with cycles between attributes).
//! - [`eval`]: the evaluator, with quality; [`window`]: bounded sliding windows.
//! - [`stage`]: the pipeline stage that evaluates on every change of an input, in
//!   dependency order; [`DeriveStageKind`] registers it.

pub mod check;
pub mod eval;
pub mod parse;
pub mod stage;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;

use backplane_config::{ExpressionChecker, ExpressionProblem};
use backplane_connector::{BuiltStage, ComponentError, Services, StageContext, StageKind};
use backplane_model::Model;

use check::Compiled;

/// A problem at character `at` of an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub at: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(at: usize, message: String) -> Problem {
        Problem {
            at,
            message,
            hint: None,
        }
    }
}

/// Compiles every derived attribute of every model: by (model, attribute index), or the
/// problems of each, by (model, attribute name). Cycles between the derived attributes of
/// a model are problems too.
#[allow(clippy::type_complexity)]
pub fn compile_models(
    models: &[Arc<Model>],
) -> (
    HashMap<(String, usize), Arc<Compiled>>,
    Vec<(String, String, Problem)>,
) {
    let mut compiled = HashMap::new();
    let mut problems = Vec::new();
    for model in models {
        for (index, attribute) in model.attributes.iter().enumerate() {
            if attribute.expr.is_none() {
                continue;
            }
            match check::compile(model, index, models) {
                Ok(c) => {
                    compiled.insert((model.name.clone(), index), Arc::new(c));
                }
                Err(ps) => problems.extend(
                    ps.into_iter()
                        .map(|p| (model.name.clone(), attribute.name.clone(), p)),
                ),
            }
        }
        for cycle in cycles(model, &compiled) {
            let names: Vec<&str> = cycle.iter().map(|&i| model.attributes[i].name.as_str()).collect();
            let first = &model.attributes[cycle[0]];
            problems.push((
                model.name.clone(),
                first.name.clone(),
                Problem {
                    at: 0,
                    message: format!(
                        "derived attributes read each other in a cycle: {} → {}",
                        names.join(" → "),
                        names[0]
                    ),
                    hint: Some(
                        "break the cycle, e.g. with `prev(NAME)`, which reads the previous value".to_owned(),
                    ),
                },
            ));
        }
    }
    (compiled, problems)
}

/// Cycles between the derived attributes of `model` (each reported once, from its
/// first attribute in model order).
fn cycles(model: &Model, compiled: &HashMap<(String, usize), Arc<Compiled>>) -> Vec<Vec<usize>> {
    let reads = |i: usize| -> Vec<usize> {
        compiled
            .get(&(model.name.clone(), i))
            .map(|c| c.triggers.clone())
            .unwrap_or_default()
    };
    let n = model.attributes.len();
    let mut done = vec![false; n];
    let mut found = Vec::new();
    for start in 0..n {
        if done[start] {
            continue;
        }
        // Depth-first from `start`, keeping the path.
        let mut path = vec![start];
        let mut next = vec![reads(start)];
        while let Some(list) = next.last_mut() {
            match list.pop() {
                Some(m) if path.contains(&m) => {
                    let from = path.iter().position(|&p| p == m).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].to_vec();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if !found.iter().any(|c: &Vec<usize>| {
                        let mut k = c.clone();
                        k.sort_unstable();
                        k == key
                    }) {
                        found.push(cycle);
                    }
                }
                Some(m) if !done[m] => {
                    path.push(m);
                    next.push(reads(m));
                }
                Some(_) => {}
                None => {
                    if let Some(p) = path.pop() {
                        done[p] = true;
                    }
                    next.pop();
                }
            }
        }
    }
    found
}

/// The checker `backplane check` runs on every model.
#[derive(Debug, Default)]
pub struct ExprChecker;

impl ExpressionChecker for ExprChecker {
    fn check(&self, models: &[Arc<Model>]) -> Vec<ExpressionProblem> {
        compile_models(models)
            .1
            .into_iter()
            .map(|(model, attribute, p)| ExpressionProblem {
                model,
                attribute,
                at: p.at,
                message: p.message,
                hint: p.hint,
            })
            .collect()
    }
}

/// The `derive` stage kind: computes derived attributes.
#[derive(Debug, Default)]
pub struct DeriveStageKind;

impl StageKind for DeriveStageKind {
    fn describe(&self) -> &'static str {
        "derived attributes: model attributes computed by an expression from other attributes"
    }

    fn build(&self, ctx: &StageContext<'_>) -> Result<BuiltStage, ComponentError> {
        let (compiled, problems) = compile_models(&ctx.topology.plan.models);
        if let Some((model, attribute, p)) = problems.first() {
            return Err(ComponentError::config(format!(
                "derived attribute `{attribute}` of `{model}`: {}",
                p.message
            )));
        }
        let stage = stage::DeriveStage::new(
            ctx.topology,
            &|model, index| compiled.get(&(model.to_owned(), index)).cloned(),
            (ctx.counter)("evaluation_errors"),
            (ctx.counter)("bad_inputs"),
        );
        Ok(BuiltStage {
            stage: Box::new(stage),
            services: Services::default(),
        })
    }

    fn expressions(&self) -> Option<Arc<dyn ExpressionChecker>> {
        Some(Arc::new(ExprChecker))
    }
}
