//! Type, unit and name checking: a parsed expression becomes a [`Compiled`] tree the
//! evaluator runs, or every problem found, each at its place in the text.

use std::sync::Arc;
use std::time::Duration;

use backplane_config::reader::edit_distance;
use backplane_model::{Attribute, DataType, Model, ScalarType, Unit};
use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue, operators};

use crate::Problem;
use crate::parse::{Parsed, char_offset, parse};

/// The kinds of value an expression computes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Num,
    Bool,
    Str,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Str => "a string",
        }
    }

    /// What an attribute's values compute as; `None` for timestamps and arrays.
    pub fn of(data_type: DataType) -> Option<Ty> {
        match data_type {
            DataType::Scalar(ScalarType::Int | ScalarType::UInt | ScalarType::Float) => Some(Ty::Num),
            DataType::Scalar(ScalarType::Bool) => Some(Ty::Bool),
            DataType::Scalar(ScalarType::String) => Some(Ty::Str),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Math {
    Abs,
    Round,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Sum,
    Min,
    Max,
    Mean,
    Count,
}

impl Agg {
    pub fn name(self) -> &'static str {
        match self {
            Agg::Sum => "sum",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Mean => "mean",
            Agg::Count => "count",
        }
    }
}

/// What a function of the previous evaluation computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Past {
    Prev,
    Delta,
    Rate,
}

/// The checked expression tree. `input` indexes [`Compiled::inputs`], `slot` the state
/// kept between evaluations ([`Compiled::slots`]).
#[derive(Debug)]
pub enum Node {
    Num(f64),
    Bool(bool),
    Str(Arc<str>),
    Input(u16),
    /// Time since the previous evaluation, in seconds divided by `per`.
    Dt {
        per: f64,
    },
    Neg(Box<Node>),
    Not(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Math(Math, Box<Node>),
    /// `min(a, b)` / `max(a, b)` of two numbers.
    Pair(Agg, Box<Node>, Box<Node>),
    Past {
        what: Past,
        input: u16,
        slot: u16,
    },
    Window {
        agg: Agg,
        input: u16,
        slot: u16,
    },
    TimeInState {
        input: u16,
        slot: u16,
    },
    Children {
        agg: Agg,
        name: u16,
    },
}

/// State a function keeps between evaluations, per asset.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot {
    /// The input's value at the previous evaluation (`prev`, `delta`, `rate`).
    Last { input: u16 },
    /// Values of the input over a sliding window (`mean`, `min`, `max`).
    Window { input: u16, width: Duration },
    /// Time the input spent equal to `label` over a sliding window.
    State {
        input: u16,
        label: Arc<str>,
        width: Duration,
    },
}

/// One checked expression, shared by every asset of its model.
#[derive(Debug)]
pub struct Compiled {
    pub text: Arc<str>,
    pub root: Node,
    pub ty: Ty,
    /// Attributes of the same asset the expression reads, by index in the model.
    pub inputs: Vec<usize>,
    /// The inputs whose change triggers an evaluation (all but the attribute itself,
    /// read only through `prev`).
    pub triggers: Vec<usize>,
    /// Attribute names read from the asset's children.
    pub children: Vec<Arc<str>>,
    pub slots: Vec<Slot>,
}

/// The shortest and longest window of `mean`, `min`, `max` and `time_in_state`.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Names an expression may call, for "did you mean" hints.
const FUNCTIONS: &[&str] = &[
    "prev",
    "delta",
    "rate",
    "mean",
    "min",
    "max",
    "sum",
    "count",
    "time_in_state",
    "abs",
    "round",
    "floor",
    "ceil",
];

/// Checks the expression of `model.attributes[index]` against the model (and, for
/// children aggregates, every model of the configuration).
pub fn compile(model: &Model, index: usize, models: &[Arc<Model>]) -> Result<Compiled, Vec<Problem>> {
    let attribute = &model.attributes[index];
    let text: Arc<str> = attribute.expr.clone().unwrap_or_else(|| "".into());
    let Parsed { expr, info } = parse(&text)?;
    let mut c = Checker {
        model,
        index,
        models,
        text: &text,
        at: &|id| char_offset(&text, &info, id),
        inputs: Vec::new(),
        triggers: Vec::new(),
        children: Vec::new(),
        slots: Vec::new(),
        problems: Vec::new(),
        depth: 0,
        too_deep: false,
    };
    let typed = c.node(&expr);
    if let Some(t) = &typed {
        c.check_result(attribute, t, &expr);
        if c.triggers.is_empty() && c.children.is_empty() {
            // It is evaluated when an input changes: with none, never.
            c.problems.push(Problem {
                at: 0,
                message: "the expression reads no other attribute of the asset or its children, so it would never be computed".to_owned(),
                hint: Some("a constant belongs in a binding or the consumer; derived attributes compute from inputs".to_owned()),
            });
        }
    }
    match typed {
        Some(t) if c.problems.is_empty() => Ok(Compiled {
            text: text.clone(),
            root: t.node,
            ty: t.ty,
            inputs: c.inputs,
            triggers: c.triggers,
            children: c.children,
            slots: c.slots,
        }),
        _ => {
            if c.problems.is_empty() {
                c.problems
                    .push(Problem::new(0, "the expression cannot be checked".to_owned()));
            }
            Err(c.problems)
        }
    }
}

/// The attributes of the same model that `model.attributes[index]`'s expression reads
/// (for cycle detection), ignoring its reads of its own previous value.
pub fn same_asset_reads(compiled: &Compiled) -> &[usize] {
    &compiled.triggers
}

struct Typed {
    node: Node,
    ty: Ty,
    unit: Option<Unit>,
}

struct Checker<'a> {
    model: &'a Model,
    index: usize,
    models: &'a [Arc<Model>],
    text: &'a str,
    at: &'a dyn Fn(u64) -> usize,
    inputs: Vec<usize>,
    triggers: Vec<usize>,
    children: Vec<Arc<str>>,
    slots: Vec<Slot>,
    problems: Vec<Problem>,
    depth: usize,
    too_deep: bool,
}

/// The deepest expression tree accepted: evaluation recurses over it.
pub const MAX_TREE_DEPTH: usize = 64;

impl Checker<'_> {
    fn error(&mut self, e: &IdedExpr, message: String, hint: Option<String>) -> Option<Typed> {
        let at = (self.at)(e.id);
        self.problems.push(Problem { at, message, hint });
        None
    }

    /// An error about a call's function: at its name (the parser places a call at its
    /// opening parenthesis).
    fn error_at_name(
        &mut self,
        e: &IdedExpr,
        name: &str,
        message: String,
        hint: Option<String>,
    ) -> Option<Typed> {
        let paren = (self.at)(e.id);
        let len = name.chars().count();
        let at = match paren.checked_sub(len) {
            Some(start) if self.text.chars().skip(start).take(len).eq(name.chars()) => start,
            _ => paren,
        };
        self.problems.push(Problem { at, message, hint });
        None
    }

    /// Checks one node, bounding the tree's depth (the evaluator recurses over it).
    fn node(&mut self, e: &IdedExpr) -> Option<Typed> {
        if self.depth >= MAX_TREE_DEPTH {
            if !self.too_deep {
                self.too_deep = true;
                self.error(
                    e,
                    format!("the expression nests deeper than {MAX_TREE_DEPTH} operations"),
                    Some("split it into several derived attributes".to_owned()),
                );
            }
            return None;
        }
        self.depth += 1;
        let typed = self.node_inner(e);
        self.depth -= 1;
        typed
    }

    fn node_inner(&mut self, e: &IdedExpr) -> Option<Typed> {
        match &e.expr {
            Expr::Literal(lit) => match lit {
                LiteralValue::Int(i) => Some(num(Node::Num(*i.inner() as f64), None)),
                LiteralValue::UInt(u) => Some(num(Node::Num(*u.inner() as f64), None)),
                LiteralValue::Double(d) => Some(num(Node::Num(*d.inner()), None)),
                LiteralValue::Boolean(b) => Some(Typed {
                    node: Node::Bool(*b.inner()),
                    ty: Ty::Bool,
                    unit: None,
                }),
                LiteralValue::String(s) => Some(Typed {
                    node: Node::Str(s.inner().into()),
                    ty: Ty::Str,
                    unit: None,
                }),
                LiteralValue::Null | LiteralValue::Bytes(_) => self.error(
                    e,
                    "null and bytes have no place in a derived attribute".to_owned(),
                    None,
                ),
            },
            Expr::Ident(name) => self.ident(e, name),
            Expr::Select(select) => {
                if matches!(&select.operand.expr, Expr::Ident(n) if n == "children") {
                    self.error(
                        e,
                        format!("`children.{}` is many values: aggregate them", select.field),
                        Some(format!(
                            "e.g. `sum(children.{0})`, `mean(children.{0})` or `count(children.{0})`",
                            select.field
                        )),
                    )
                } else {
                    self.error(
                        e,
                        "field selection (`a.b`) is only `children.NAME` inside an aggregate".to_owned(),
                        None,
                    )
                }
            }
            Expr::Call(call) => self.call(e, call),
            Expr::Comprehension(_) => self.error(
                e,
                "macros such as `all`, `exists`, `map` and `filter` are not supported".to_owned(),
                Some(
                    "a derived attribute reads single values; aggregate children with sum/min/max/mean/count"
                        .to_owned(),
                ),
            ),
            Expr::List(_) | Expr::Map(_) | Expr::Struct(_) | Expr::Unspecified => self.error(
                e,
                "lists, maps and messages are not supported in a derived attribute".to_owned(),
                None,
            ),
        }
    }

    fn ident(&mut self, e: &IdedExpr, name: &str) -> Option<Typed> {
        if let Some(i) = self.model.attributes.iter().position(|a| a.name == name) {
            if i == self.index {
                return self.error(
                    e,
                    format!("`{name}` reads itself"),
                    Some(format!("use `prev({name})` for its previous value")),
                );
            }
            let attribute = &self.model.attributes[i];
            let Some(ty) = Ty::of(attribute.data_type) else {
                return self.error(
                    e,
                    format!(
                        "`{name}` is {}, which an expression cannot compute with",
                        attribute.data_type
                    ),
                    None,
                );
            };
            let input = self.input(i, true);
            return Some(Typed {
                node: Node::Input(input),
                ty,
                unit: attribute.unit.clone(),
            });
        }
        match name {
            "dt" => Some(num(Node::Dt { per: 1.0 }, Unit::parse("s"))),
            "dt_min" => Some(num(Node::Dt { per: 60.0 }, Unit::parse("min"))),
            "children" => self.error(
                e,
                "`children` alone is no value".to_owned(),
                Some("aggregate an attribute of the children, e.g. `sum(children.good_count)`".to_owned()),
            ),
            _ => {
                let (message, hint) = self.unknown(name);
                self.error(e, message, hint)
            }
        }
    }

    fn unknown(&self, name: &str) -> (String, Option<String>) {
        let names: Vec<&str> = self
            .model
            .attributes
            .iter()
            .map(|a| a.name.as_str())
            .chain(["dt", "dt_min"])
            .collect();
        (
            format!("unknown attribute `{name}` of model `{}`", self.model.name),
            hint(name, &names, &format!("attributes of `{}`", self.model.name)),
        )
    }

    /// Records that the expression reads attribute `i` of its asset.
    fn input(&mut self, i: usize, triggers: bool) -> u16 {
        if triggers && i != self.index && !self.triggers.contains(&i) {
            self.triggers.push(i);
        }
        match self.inputs.iter().position(|&x| x == i) {
            Some(p) => p as u16,
            None => {
                self.inputs.push(i);
                (self.inputs.len() - 1) as u16
            }
        }
    }

    fn slot(&mut self, slot: Slot) -> u16 {
        match self.slots.iter().position(|s| *s == slot) {
            Some(p) => p as u16,
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u16
            }
        }
    }

    fn call(&mut self, e: &IdedExpr, call: &CallExpr) -> Option<Typed> {
        if call.target.is_some() {
            return self.error(
                e,
                format!("method calls (`x.{}()`) are not supported", call.func_name),
                Some(format!("write `{}(x)`", call.func_name)),
            );
        }
        let args = &call.args;
        let name = call.func_name.as_str();
        match name {
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO => {
                let op = match name {
                    operators::ADD => Arith::Add,
                    operators::SUBSTRACT => Arith::Sub,
                    operators::MULTIPLY => Arith::Mul,
                    operators::DIVIDE => Arith::Div,
                    _ => Arith::Mod,
                };
                let (a, b) = self.two(args)?;
                self.numeric(&args[0], &a)?;
                self.numeric(&args[1], &b)?;
                let unit = match op {
                    Arith::Add | Arith::Sub | Arith::Mod => {
                        self.same_unit(e, &a, &b, "added or subtracted")?
                    }
                    Arith::Div => per_time(&a.unit, &b.unit),
                    Arith::Mul => None,
                };
                Some(num(Node::Arith(op, Box::new(a.node), Box::new(b.node)), unit))
            }
            operators::NEGATE => {
                let a = self.node(args.first()?)?;
                self.numeric(&args[0], &a)?;
                Some(num(Node::Neg(Box::new(a.node)), a.unit))
            }
            operators::LOGICAL_NOT => {
                let a = self.node(args.first()?)?;
                self.expect(&args[0], &a, Ty::Bool)?;
                Some(boolean(Node::Not(Box::new(a.node))))
            }
            operators::LOGICAL_AND | operators::LOGICAL_OR => {
                let (a, b) = self.two(args)?;
                self.expect(&args[0], &a, Ty::Bool)?;
                self.expect(&args[1], &b, Ty::Bool)?;
                let (a, b) = (Box::new(a.node), Box::new(b.node));
                Some(boolean(if name == operators::LOGICAL_AND {
                    Node::And(a, b)
                } else {
                    Node::Or(a, b)
                }))
            }
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS => {
                let op = match name {
                    operators::EQUALS => Cmp::Eq,
                    operators::NOT_EQUALS => Cmp::Ne,
                    operators::LESS => Cmp::Lt,
                    operators::LESS_EQUALS => Cmp::Le,
                    operators::GREATER => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                let (a, b) = self.two(args)?;
                if matches!(op, Cmp::Eq | Cmp::Ne) {
                    if a.ty != b.ty {
                        return self.error(
                            e,
                            format!("comparing {} with {}", a.ty.name(), b.ty.name()),
                            None,
                        );
                    }
                } else {
                    self.numeric(&args[0], &a)?;
                    self.numeric(&args[1], &b)?;
                }
                self.same_unit(e, &a, &b, "compared")?;
                Some(boolean(Node::Cmp(op, Box::new(a.node), Box::new(b.node))))
            }
            operators::CONDITIONAL => {
                let [c, a, b] = args.as_slice() else {
                    return self.error(e, "a conditional takes three parts".to_owned(), None);
                };
                let (tc, ta, tb) = (self.node(c), self.node(a), self.node(b));
                let (tc, ta, tb) = (tc?, ta?, tb?);
                self.expect(c, &tc, Ty::Bool)?;
                if ta.ty != tb.ty {
                    return self.error(
                        b,
                        format!("the branches differ: {} and {}", ta.ty.name(), tb.ty.name()),
                        None,
                    );
                }
                let unit = self.same_unit(b, &ta, &tb, "the branches of a conditional")?;
                Some(Typed {
                    node: Node::Cond(Box::new(tc.node), Box::new(ta.node), Box::new(tb.node)),
                    ty: ta.ty,
                    unit,
                })
            }
            "abs" | "round" | "floor" | "ceil" => {
                self.arity(e, name, args, 1)?;
                let a = self.node(&args[0])?;
                self.numeric(&args[0], &a)?;
                let f = match name {
                    "abs" => Math::Abs,
                    "round" => Math::Round,
                    "floor" => Math::Floor,
                    _ => Math::Ceil,
                };
                Some(num(Node::Math(f, Box::new(a.node)), a.unit))
            }
            "prev" | "delta" | "rate" => {
                self.arity(e, name, args, 1)?;
                let i = self.attribute_arg(&args[0], name)?;
                let attribute = self.model.attributes[i].clone();
                let what = match name {
                    "prev" => Past::Prev,
                    "delta" => Past::Delta,
                    _ => Past::Rate,
                };
                let ty = Ty::of(attribute.data_type)?;
                if what != Past::Prev && ty != Ty::Num {
                    return self.error(
                        &args[0],
                        format!(
                            "`{name}` needs a number, and `{}` is {}",
                            attribute.name, attribute.data_type
                        ),
                        None,
                    );
                }
                let input = self.input(i, i != self.index);
                let slot = self.slot(Slot::Last { input });
                let unit = match what {
                    Past::Rate => per_time(&attribute.unit, &Unit::parse("s")),
                    _ => attribute.unit.clone(),
                };
                Some(Typed {
                    node: Node::Past { what, input, slot },
                    ty,
                    unit,
                })
            }
            "time_in_state" => {
                self.arity(e, name, args, 3)?;
                let i = self.attribute_arg(&args[0], name)?;
                let attribute = self.model.attributes[i].clone();
                if Ty::of(attribute.data_type) != Some(Ty::Str) {
                    return self.error(
                        &args[0],
                        format!(
                            "`time_in_state` needs a string attribute, and `{}` is {}",
                            attribute.name, attribute.data_type
                        ),
                        None,
                    );
                }
                let label = self.string_arg(&args[1], "the state")?;
                if let Some(allowed) = &attribute.allowed
                    && !allowed.iter().any(|a| **a == *label)
                {
                    let names: Vec<&str> = allowed.iter().map(String::as_str).collect();
                    return self.error(
                        &args[1],
                        format!("`{label}` is not one of the labels of `{}`", attribute.name),
                        hint(&label, &names, "labels"),
                    );
                }
                let width = self.window_arg(&args[2])?;
                let input = self.input(i, i != self.index);
                let slot = self.slot(Slot::State { input, label, width });
                Some(num(Node::TimeInState { input, slot }, Unit::parse("s")))
            }
            "sum" | "min" | "max" | "mean" | "count" => {
                let agg = match name {
                    "sum" => Agg::Sum,
                    "min" => Agg::Min,
                    "max" => Agg::Max,
                    "mean" => Agg::Mean,
                    _ => Agg::Count,
                };
                match args.as_slice() {
                    [a] if children_field(a).is_some() => self.children(e, agg, a),
                    [a, w]
                        if matches!(agg, Agg::Mean | Agg::Min | Agg::Max)
                            && matches!(w.expr, Expr::Literal(LiteralValue::String(_))) =>
                    {
                        let i = self.attribute_arg(a, name)?;
                        let attribute = self.model.attributes[i].clone();
                        if Ty::of(attribute.data_type) != Some(Ty::Num) {
                            return self.error(
                                a,
                                format!(
                                    "`{name}` over a window needs a number, and `{}` is {}",
                                    attribute.name, attribute.data_type
                                ),
                                None,
                            );
                        }
                        let width = self.window_arg(w)?;
                        let input = self.input(i, i != self.index);
                        let slot = self.slot(Slot::Window { input, width });
                        Some(num(Node::Window { agg, input, slot }, attribute.unit.clone()))
                    }
                    [a, b] if matches!(agg, Agg::Min | Agg::Max) => {
                        let (ta, tb) = (self.node(a), self.node(b));
                        let (ta, tb) = (ta?, tb?);
                        self.numeric(a, &ta)?;
                        self.numeric(b, &tb)?;
                        let unit = self.same_unit(e, &ta, &tb, "compared")?;
                        Some(num(Node::Pair(agg, Box::new(ta.node), Box::new(tb.node)), unit))
                    }
                    _ => {
                        let usage = match agg {
                            Agg::Sum | Agg::Count => format!("`{name}(children.NAME)`"),
                            Agg::Mean => "`mean(children.NAME)` or `mean(NAME, \"5m\")`".to_owned(),
                            Agg::Min | Agg::Max => {
                                format!("`{name}(children.NAME)`, `{name}(NAME, \"5m\")` or `{name}(a, b)`")
                            }
                        };
                        self.error_at_name(
                            e,
                            name,
                            format!("wrong arguments for `{name}` ({} given)", args.len()),
                            Some(format!("write {usage}")),
                        )
                    }
                }
            }
            _ => {
                let hint = hint(name, FUNCTIONS, "functions");
                self.error_at_name(e, name, format!("unknown function `{name}`"), hint)
            }
        }
    }

    fn children(&mut self, e: &IdedExpr, agg: Agg, arg: &IdedExpr) -> Option<Typed> {
        let field = children_field(arg)?;
        let found: Vec<&Arc<Attribute>> = self
            .models
            .iter()
            .filter_map(|m| m.attributes.iter().find(|a| a.name == field))
            .collect();
        let Some(first) = found.first() else {
            let names: Vec<&str> = self
                .models
                .iter()
                .flat_map(|m| m.attributes.iter().map(|a| a.name.as_str()))
                .collect();
            return self.error(
                arg,
                format!("no model has an attribute `{field}` for `children.{field}`"),
                hint(field, &names, "attributes"),
            );
        };
        let ty = Ty::of(first.data_type);
        if found.iter().any(|a| Ty::of(a.data_type) != ty) {
            return self.error(arg, format!("models disagree on the type of `{field}`"), None);
        }
        if agg != Agg::Count && ty != Some(Ty::Num) {
            return self.error(
                arg,
                format!(
                    "`{}` needs numbers, and `{field}` is {}",
                    agg.name(),
                    first.data_type
                ),
                Some(format!("`count(children.{field})` counts children with a value")),
            );
        }
        let unit = if agg == Agg::Count || found.iter().any(|a| a.unit != first.unit) {
            None
        } else {
            first.unit.clone()
        };
        let name = match self.children.iter().position(|c| **c == *field) {
            Some(p) => p as u16,
            None => {
                self.children.push(field.into());
                (self.children.len() - 1) as u16
            }
        };
        let _ = e;
        Some(num(Node::Children { agg, name }, unit))
    }

    /// The argument of a windowed function: an attribute of the asset, by name.
    fn attribute_arg(&mut self, arg: &IdedExpr, function: &str) -> Option<usize> {
        let Expr::Ident(name) = &arg.expr else {
            return self
                .error(
                    arg,
                    format!("`{function}` takes an attribute's name, not an expression"),
                    Some("make the expression a derived attribute of its own and name it here".to_owned()),
                )
                .map(|_| 0);
        };
        match self.model.attributes.iter().position(|a| a.name == *name) {
            Some(i) if Ty::of(self.model.attributes[i].data_type).is_some() => Some(i),
            Some(_) => self
                .error(arg, format!("`{name}` cannot be computed with"), None)
                .map(|_| 0),
            None => {
                let (message, hint) = self.unknown(name);
                self.error(arg, message, hint).map(|_| 0)
            }
        }
    }

    fn string_arg(&mut self, arg: &IdedExpr, what: &str) -> Option<Arc<str>> {
        match &arg.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.inner().into()),
            _ => self
                .error(
                    arg,
                    format!("{what} must be a string literal, e.g. \"Running\""),
                    None,
                )
                .map(|_| "".into()),
        }
    }

    fn window_arg(&mut self, arg: &IdedExpr) -> Option<Duration> {
        let text = self.string_arg(arg, "the window")?;
        match backplane_config::parse_duration(&text) {
            Ok(d) if (MIN_WINDOW..=MAX_WINDOW).contains(&d) => Some(d),
            Ok(_) => self
                .error(arg, format!("window \"{text}\" is outside 1s to 7d"), None)
                .map(|_| Duration::ZERO),
            Err(e) => self
                .error(
                    arg,
                    format!("window \"{text}\" is no duration: {e}"),
                    Some("e.g. \"30s\", \"5m\", \"1h\"".to_owned()),
                )
                .map(|_| Duration::ZERO),
        }
    }

    fn arity(&mut self, e: &IdedExpr, name: &str, args: &[IdedExpr], n: usize) -> Option<()> {
        if args.len() == n {
            return Some(());
        }
        let usage = match name {
            "time_in_state" => "time_in_state(NAME, \"Label\", \"1h\")",
            "prev" | "delta" | "rate" => "one attribute name",
            _ => "one number",
        };
        self.error_at_name(
            e,
            name,
            format!(
                "`{name}` takes {n} argument{}, {} given",
                if n == 1 { "" } else { "s" },
                args.len()
            ),
            Some(format!("write {usage}")),
        )
        .map(|_| ())
    }

    fn two(&mut self, args: &[IdedExpr]) -> Option<(Typed, Typed)> {
        let [a, b] = args else { return None };
        let (a, b) = (self.node(a), self.node(b));
        Some((a?, b?))
    }

    fn numeric(&mut self, e: &IdedExpr, t: &Typed) -> Option<()> {
        self.expect(e, t, Ty::Num)
    }

    fn expect(&mut self, e: &IdedExpr, t: &Typed, ty: Ty) -> Option<()> {
        if t.ty == ty {
            return Some(());
        }
        let what = describe(self.text, &(self.at)(e.id));
        self.error(
            e,
            format!("type mismatch: {what} is {}, expected {}", t.ty.name(), ty.name()),
            None,
        )
        .map(|_| ())
    }

    /// Both sides' unit when they agree; an error when both are known and differ.
    fn same_unit(&mut self, e: &IdedExpr, a: &Typed, b: &Typed, how: &str) -> Option<Option<Unit>> {
        match (&a.unit, &b.unit) {
            (Some(x), Some(y)) if x.symbol() != y.symbol() => self
                .error(
                    e,
                    format!("unit mismatch: {} and {} {how}", x.symbol(), y.symbol()),
                    Some(
                        "convert one side first (e.g. multiply by a factor) or fix the attributes' units"
                            .to_owned(),
                    ),
                )
                .map(|_| None),
            (Some(x), _) | (_, Some(x)) => Some(Some(x.clone())),
            _ => Some(None),
        }
    }

    fn check_result(&mut self, attribute: &Attribute, t: &Typed, e: &IdedExpr) {
        let Some(want) = Ty::of(attribute.data_type) else {
            return;
        };
        if t.ty != want {
            self.error(
                e,
                format!(
                    "type mismatch: the expression is {}, but attribute `{}` is {}",
                    t.ty.name(),
                    attribute.name,
                    attribute.data_type
                ),
                None,
            );
            return;
        }
        if let (Some(have), Some(declared)) = (&t.unit, &attribute.unit)
            && have.symbol() != declared.symbol()
        {
            self.error(
                e,
                format!(
                    "unit mismatch: the expression is in {}, but attribute `{}` is in {}",
                    have.symbol(),
                    attribute.name,
                    declared.symbol()
                ),
                None,
            );
        }
    }
}

fn num(node: Node, unit: Option<Unit>) -> Typed {
    Typed {
        node,
        ty: Ty::Num,
        unit,
    }
}

fn boolean(node: Node) -> Typed {
    Typed {
        node,
        ty: Ty::Bool,
        unit: None,
    }
}

/// `u / t` when `t` is a time unit and `u/t` names a unit (`bottle` / `min` is
/// `bottle/min`); unknown otherwise.
fn per_time(u: &Option<Unit>, t: &Option<Unit>) -> Option<Unit> {
    let (u, t) = (u.as_ref()?, t.as_ref()?);
    if *t.dimension() != backplane_model::units::Dimension::Time {
        return None;
    }
    Unit::parse(&format!("{}/{}", u.symbol(), t.symbol()))
}

fn children_field(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Select(s) if !s.test && matches!(&s.operand.expr, Expr::Ident(n) if n == "children") => {
            Some(s.field.as_str())
        }
        _ => None,
    }
}

/// A few characters of the text from `at`, to name an operand in a message.
fn describe(text: &str, at: &usize) -> String {
    let rest: String = text.chars().skip(*at).take(24).collect();
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '"')
        .collect();
    if word.is_empty() {
        "this operand".to_owned()
    } else {
        format!("`{word}`")
    }
}

/// "did you mean" for a close name, or the list of names.
pub(crate) fn hint(word: &str, names: &[&str], what: &str) -> Option<String> {
    let best = names
        .iter()
        .map(|n| (edit_distance(word, n), n))
        .filter(|(d, n)| *d <= (n.len() / 3).max(1))
        .min_by_key(|(d, _)| *d);
    if let Some((_, n)) = best {
        return Some(format!("did you mean `{n}`?"));
    }
    if names.is_empty() {
        return None;
    }
    let mut list = names.iter().take(12).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 12 {
        list.push_str(", ...");
    }
    Some(format!("{what}: {list}"))
}
