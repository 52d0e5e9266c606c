//! Evaluating a checked expression: numbers as `f64`, quality carried along (an uncertain
//! input makes the result uncertain, a bad or missing one makes it bad with the input's
//! reason), every arithmetic failure (division by zero, overflow, NaN) a bad result with
//! a message, never a panic. Execution is bounded by the tree, which has no loops and a
//! checked depth.

use std::sync::Arc;

use backplane_connector::DerivationInput;
use backplane_model::{
    Attribute, BadReason, DataType, Quality, ScalarType, Timestamp, UncertainReason, Value,
};

use crate::check::{Agg, Arith, Cmp, Compiled, Math, Node, Past, Slot};
use crate::window::Window;

/// A value computed with.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Num(f64),
    Bool(bool),
    Str(Arc<str>),
}

impl V {
    fn from_value(value: &Value) -> Option<V> {
        match value {
            Value::Bool(b) => Some(V::Bool(*b)),
            Value::String(s) => Some(V::Str(s.clone())),
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => value.as_f64().map(V::Num),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        match self {
            V::Num(x) => Value::Float(*x),
            V::Bool(b) => Value::Bool(*b),
            V::Str(s) => Value::String(s.clone()),
        }
    }

    fn num(&self) -> f64 {
        match self {
            V::Num(x) => *x,
            // The checker only lets numbers into arithmetic.
            V::Bool(b) => f64::from(u8::from(*b)),
            V::Str(_) => f64::NAN,
        }
    }

    fn boolean(&self) -> bool {
        matches!(self, V::Bool(true))
    }
}

/// The latest value of a tag, as the stage last saw it.
#[derive(Clone, Debug)]
pub struct Reading {
    pub path: Arc<str>,
    pub value: Option<Value>,
    pub quality: Quality,
    pub time: Timestamp,
}

/// Why a result is bad.
#[derive(Clone, Debug, PartialEq)]
pub struct Fail {
    pub reason: BadReason,
    pub message: String,
    /// The computation itself failed (division by zero, overflow, a value out of the
    /// attribute's type): counted as an evaluation error. Otherwise an input was bad or
    /// missing, which the input's own quality already reports.
    pub computation: bool,
}

impl Fail {
    fn input(reason: BadReason, message: String) -> Fail {
        Fail {
            reason,
            message,
            computation: false,
        }
    }

    fn math(message: String) -> Fail {
        Fail {
            reason: BadReason::OutOfRange,
            message,
            computation: true,
        }
    }
}

/// State one function call keeps between evaluations.
#[derive(Debug, Clone)]
enum SlotState {
    /// The input at the previous evaluation: value, quality, unix nanoseconds.
    Last(Option<(V, Quality, i64)>),
    Window(Window),
    /// Time in state: the window of seconds in state, and whether the input was in the
    /// state at the previous evaluation (and when).
    State(Window, Option<(bool, i64)>),
}

/// What one derived attribute of one asset remembers between evaluations.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    slots: Vec<SlotState>,
    /// When it was last evaluated (unix nanoseconds), for `dt`.
    last: Option<i64>,
}

impl Memory {
    pub fn new(compiled: &Compiled) -> Memory {
        Memory {
            slots: compiled
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Last { .. } => SlotState::Last(None),
                    Slot::Window { width, .. } => SlotState::Window(Window::new(*width)),
                    Slot::State { width, .. } => SlotState::State(Window::new(*width), None),
                })
                .collect(),
            last: None,
        }
    }
}

/// What an evaluation reads: the inputs of the asset (per [`Compiled::inputs`]) and, per
/// name of [`Compiled::children`], every child that has that attribute.
#[derive(Debug)]
pub struct Env<'a> {
    pub now: Timestamp,
    pub inputs: &'a [Option<&'a Reading>],
    pub children: &'a [Vec<(Arc<str>, Option<&'a Reading>)>],
}

/// The result of one evaluation.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<V, Fail>,
    /// Good or uncertain (when some input was); meaningful when `result` is a value.
    pub quality: Quality,
    /// The inputs read, for lineage.
    pub trace: Vec<DerivationInput>,
}

/// Evaluates `compiled` at `env.now`, then remembers what `prev`, windows and `dt` need.
pub fn evaluate(compiled: &Compiled, memory: &mut Memory, env: &Env<'_>) -> Outcome {
    let now = env.now.unix_nanos();
    let usable = |input: u16| {
        env.inputs
            .get(input as usize)
            .copied()
            .flatten()
            .filter(|r| !r.quality.is_bad())
            .and_then(|r| Some((V::from_value(r.value.as_ref()?)?, r.quality)))
    };
    // Windows take the current value first, so it counts in this evaluation.
    for (slot, state) in compiled.slots.iter().zip(memory.slots.iter_mut()) {
        match (slot, state) {
            (Slot::Window { input, .. }, SlotState::Window(w)) => {
                if let Some((V::Num(x), q)) = usable(*input) {
                    w.record(now, x, !q.is_good());
                }
            }
            (Slot::State { input, label, .. }, SlotState::State(w, last)) => {
                if let Some((was, since)) = *last
                    && was
                    && now > since
                {
                    w.add_time(now, (now - since) as f64 / 1e9);
                }
                // An unusable input leaves the state unknown: no time is counted for it.
                *last = usable(*input).map(|(v, _)| (v == V::Str(label.clone()), now));
            }
            _ => {}
        }
    }
    let mut ev = Eval {
        env,
        memory,
        now,
        quality: Quality::Good,
        trace: Vec::new(),
    };
    let result = ev.eval(&compiled.root);
    let (quality, trace) = (ev.quality, ev.trace);
    for (slot, state) in compiled.slots.iter().zip(memory.slots.iter_mut()) {
        if let (Slot::Last { input }, SlotState::Last(last)) = (slot, state)
            && let Some((v, q)) = usable(*input)
        {
            *last = Some((v, q, now));
        }
    }
    memory.last = Some(now);
    Outcome {
        result,
        quality,
        trace,
    }
}

/// Converts a result to the attribute's type and checks its range and labels: the value
/// and its quality, or why it is bad.
pub fn finish(v: &V, quality: Quality, attribute: &Attribute) -> Result<(Value, Quality), Fail> {
    let value = match (v, attribute.data_type) {
        (V::Num(x), _) if !x.is_finite() => {
            return Err(Fail::math(format!("the result {x} is not a finite number")));
        }
        (V::Num(x), DataType::Scalar(ScalarType::Float)) => match attribute.decimals {
            Some(d) => Value::Float(backplane_model::decimal::round(*x, d)),
            None => Value::Float(*x),
        },
        (V::Num(_), t) => v
            .to_value()
            .convert(t)
            .map_err(|e| Fail::math(format!("the result does not fit the attribute: {e}")))?,
        (other, _) => other.to_value(),
    };
    if let (Value::String(label), Some(allowed)) = (&value, &attribute.allowed)
        && !allowed.iter().any(|a| **a == **label)
    {
        return Err(Fail {
            reason: BadReason::ConfigError,
            message: format!("{label:?} is not one of the attribute's `enum` labels"),
            computation: true,
        });
    }
    let out_of_range = match (&value, attribute.range) {
        (Value::Float(_) | Value::Int(_) | Value::UInt(_), Some([min, max])) => {
            value.as_f64().is_some_and(|x| !(min..=max).contains(&x))
        }
        _ => false,
    };
    let quality = if out_of_range && quality.is_good() {
        Quality::Uncertain(UncertainReason::EngineeringUnitsExceeded)
    } else {
        quality
    };
    Ok((value, quality))
}

struct Eval<'a, 'e> {
    env: &'a Env<'e>,
    memory: &'a Memory,
    now: i64,
    quality: Quality,
    trace: Vec<DerivationInput>,
}

impl Eval<'_, '_> {
    fn degrade(&mut self, q: Quality) {
        if self.quality.is_good() && !q.is_good() {
            self.quality = q;
        }
    }

    fn trace(
        &mut self,
        path: &Arc<str>,
        role: Option<String>,
        value: Option<Value>,
        quality: Quality,
        time: Option<Timestamp>,
    ) {
        if self.trace.iter().any(|t| t.path == *path && t.role == role) {
            return;
        }
        self.trace.push(DerivationInput {
            path: path.clone(),
            role,
            value,
            quality,
            quality_reason: quality.reason(),
            time,
        });
    }

    /// A usable value of a reading, or why not.
    fn read(&mut self, reading: Option<&Reading>, missing: &str, role: Option<String>) -> Result<V, Fail> {
        let Some(r) = reading else {
            return Err(Fail::input(
                BadReason::WaitingForInitialData,
                format!("no value of {missing} yet"),
            ));
        };
        self.trace(&r.path, role, r.value.clone(), r.quality, Some(r.time));
        if let Quality::Bad(reason) = r.quality {
            return Err(Fail::input(
                reason,
                format!(
                    "input `{}` is bad ({})",
                    r.path,
                    r.quality.reason().unwrap_or("bad")
                ),
            ));
        }
        let Some(v) = r.value.as_ref().and_then(V::from_value) else {
            return Err(Fail::input(
                BadReason::WaitingForInitialData,
                format!("input `{}` has no value", r.path),
            ));
        };
        self.degrade(r.quality);
        Ok(v)
    }

    fn input(&mut self, input: u16) -> Result<V, Fail> {
        let reading = self.env.inputs.get(input as usize).copied().flatten();
        self.read(reading, "an input", None)
    }

    fn input_path(&self, input: u16) -> Arc<str> {
        self.env
            .inputs
            .get(input as usize)
            .copied()
            .flatten()
            .map_or_else(|| "?".into(), |r| r.path.clone())
    }

    fn eval(&mut self, node: &Node) -> Result<V, Fail> {
        match node {
            Node::Num(x) => Ok(V::Num(*x)),
            Node::Bool(b) => Ok(V::Bool(*b)),
            Node::Str(s) => Ok(V::Str(s.clone())),
            Node::Input(i) => self.input(*i),
            Node::Dt { per } => match self.memory.last {
                Some(last) => Ok(V::Num((self.now - last) as f64 / 1e9 / per)),
                None => Err(Fail::input(
                    BadReason::WaitingForInitialData,
                    "no previous evaluation yet (dt)".to_owned(),
                )),
            },
            Node::Neg(a) => Ok(V::Num(-self.eval(a)?.num())),
            Node::Not(a) => Ok(V::Bool(!self.eval(a)?.boolean())),
            Node::Arith(op, a, b) => {
                let (x, y) = (self.eval(a)?.num(), self.eval(b)?.num());
                arith(*op, x, y).map(V::Num)
            }
            Node::Cmp(op, a, b) => {
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                Ok(V::Bool(compare(*op, &x, &y)))
            }
            Node::And(a, b) => Ok(V::Bool(self.eval(a)?.boolean() && self.eval(b)?.boolean())),
            Node::Or(a, b) => Ok(V::Bool(self.eval(a)?.boolean() || self.eval(b)?.boolean())),
            Node::Cond(c, a, b) => {
                if self.eval(c)?.boolean() {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Node::Math(f, a) => {
                let x = self.eval(a)?.num();
                Ok(V::Num(match f {
                    Math::Abs => x.abs(),
                    Math::Round => x.round(),
                    Math::Floor => x.floor(),
                    Math::Ceil => x.ceil(),
                }))
            }
            Node::Pair(agg, a, b) => {
                let (x, y) = (self.eval(a)?.num(), self.eval(b)?.num());
                Ok(V::Num(if *agg == Agg::Min { x.min(y) } else { x.max(y) }))
            }
            Node::Past { what, input, slot } => self.past(*what, *input, *slot),
            Node::Window { agg, input, slot } => {
                // The current value's quality (bad input → bad result).
                self.input(*input)?;
                let Some(SlotState::Window(w)) = self.memory.slots.get(*slot as usize) else {
                    return Err(Fail::math("internal: window state missing".to_owned()));
                };
                let s = w.summary(self.now);
                if s.count == 0 {
                    return Err(Fail::input(
                        BadReason::WaitingForInitialData,
                        "no usable value in the window yet".to_owned(),
                    ));
                }
                if s.uncertain {
                    self.degrade(Quality::Uncertain(UncertainReason::Unspecified));
                }
                Ok(V::Num(match agg {
                    Agg::Min => s.min,
                    Agg::Max => s.max,
                    _ => s.sum / s.count as f64,
                }))
            }
            Node::TimeInState { input, slot } => {
                // The current state's quality (bad state → bad result).
                self.input(*input)?;
                let Some(SlotState::State(w, last)) = self.memory.slots.get(*slot as usize) else {
                    return Err(Fail::math("internal: state window missing".to_owned()));
                };
                if last.is_none() {
                    return Err(Fail::input(
                        BadReason::WaitingForInitialData,
                        "the state is not known yet".to_owned(),
                    ));
                }
                Ok(V::Num(w.summary(self.now).sum))
            }
            Node::Children { agg, name } => self.children(*agg, *name),
        }
    }

    fn past(&mut self, what: Past, input: u16, slot: u16) -> Result<V, Fail> {
        let Some(SlotState::Last(last)) = self.memory.slots.get(slot as usize) else {
            return Err(Fail::math("internal: previous value missing".to_owned()));
        };
        let path = self.input_path(input);
        let Some((prev, q, at)) = last.clone() else {
            return Err(Fail::input(
                BadReason::WaitingForInitialData,
                format!("no previous value of `{path}` yet"),
            ));
        };
        self.trace(
            &path,
            Some("prev".to_owned()),
            Some(prev.to_value()),
            q,
            Some(Timestamp::from_unix_nanos(at)),
        );
        self.degrade(q);
        if what == Past::Prev {
            return Ok(prev);
        }
        let now = self.input(input)?.num();
        let delta = arith(Arith::Sub, now, prev.num())?;
        if what == Past::Delta {
            return Ok(V::Num(delta));
        }
        let seconds = (self.now - at) as f64 / 1e9;
        if seconds <= 0.0 {
            return Err(Fail::math(format!(
                "rate of `{path}`: no time passed since its previous value"
            )));
        }
        arith(Arith::Div, delta, seconds).map(V::Num)
    }

    fn children(&mut self, agg: Agg, name: u16) -> Result<V, Fail> {
        let env = self.env;
        let Some(children) = env.children.get(name as usize) else {
            return Err(Fail::math("internal: children missing".to_owned()));
        };
        let (mut sum, mut count, mut min, mut max) = (0.0, 0u64, f64::INFINITY, f64::NEG_INFINITY);
        for (path, reading) in children {
            if agg == Agg::Count {
                if let Some(r) = reading {
                    self.trace(&r.path, None, r.value.clone(), r.quality, Some(r.time));
                    if !r.quality.is_bad() && r.value.is_some() {
                        count += 1;
                    }
                }
                continue;
            }
            let x = self.read(*reading, &format!("`{path}`"), None)?.num();
            sum += x;
            count += 1;
            min = min.min(x);
            max = max.max(x);
        }
        match agg {
            Agg::Count => Ok(V::Num(count as f64)),
            Agg::Sum if sum.is_finite() => Ok(V::Num(sum)),
            Agg::Sum => Err(Fail::math("the sum over the children is not finite".to_owned())),
            _ if count == 0 => Err(Fail::input(
                BadReason::WaitingForInitialData,
                "no child has this attribute".to_owned(),
            )),
            Agg::Min => Ok(V::Num(min)),
            Agg::Max => Ok(V::Num(max)),
            Agg::Mean => arith(Arith::Div, sum, count as f64).map(V::Num),
        }
    }
}

fn arith(op: Arith, x: f64, y: f64) -> Result<f64, Fail> {
    let r = match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div | Arith::Mod if y == 0.0 => return Err(Fail::math(format!("division by zero ({x} / 0)"))),
        Arith::Div => x / y,
        Arith::Mod => x % y,
    };
    if r.is_finite() {
        Ok(r)
    } else {
        Err(Fail::math(format!("overflow: the result of {x} and {y} is {r}")))
    }
}

fn compare(op: Cmp, x: &V, y: &V) -> bool {
    match (x, y) {
        (V::Num(a), V::Num(b)) => match op {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        },
        _ => match op {
            Cmp::Eq => x == y,
            Cmp::Ne => x != y,
            _ => false,
        },
    }
}
