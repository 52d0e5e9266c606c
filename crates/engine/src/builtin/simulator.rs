//! Source kind `simulator`: deterministic signals per address, for demos and tests.
//!
//! Every signal is a function of the tick number (`tick · period` is its time) and, for
//! random walks, of a PCG generator seeded from the source's `seed` and the address, so
//! the same configuration yields the same sequence of values on every run and machine.
//! Values can be served as typed values or encoded into 16-bit registers (with a word
//! order), the way a PLC would serve them, so the pipeline's decode step is exercised.

use std::collections::BTreeMap;
use std::time::Duration;

use backplane_config::{AddressError, Table};
use backplane_model::fnv::fnv1a;
use backplane_model::{DecodeType, Quality, ScalarType, Timestamp, Value, WordOrder};
use futures::FutureExt;
use futures::future::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg32;

use backplane_connector::{ComponentError, Kind, RawReading, Source, SourceContext, SourceIo, SourceKind};

/// The shape of one signal.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Constant(Value),
    /// `offset + amplitude · sin(2π (t + phase) / period)`.
    Sine {
        amplitude: f64,
        offset: f64,
        period: f64,
        phase: f64,
    },
    /// Sawtooth from `from` to `to` over `period`, then again.
    Ramp {
        from: f64,
        to: f64,
        period: f64,
    },
    /// Starts at `start`, moves by a uniform step in `[-step, step]` per tick, clamped.
    RandomWalk {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    /// Adds `increment` every `every` ticks, wrapping to 0 at `rollover` (exclusive).
    Counter {
        start: u64,
        increment: u64,
        every: u64,
        rollover: Option<u64>,
    },
    /// Steps through `values`, `step` seconds each, then starts over (e.g. machine states).
    Sequence {
        values: Vec<Value>,
        step: f64,
    },
}

/// How a signal's value is served.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// As computed (floats for the continuous shapes).
    Native,
    /// Converted to a scalar type (floats are rounded for integer types).
    Typed(ScalarType),
    /// Encoded into registers: one `uint` for 16-bit types, an array of them otherwise.
    Registers(DecodeType, WordOrder),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SignalSpec {
    pub shape: Shape,
    pub encoding: Encoding,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimulatorSettings {
    pub seed: u64,
    pub period: Duration,
    /// Fault injection: the source fails this long after each start.
    pub fail_after: Option<Duration>,
    pub signals: BTreeMap<String, SignalSpec>,
}

/// Produces one signal's values tick by tick.
#[derive(Debug, Clone)]
pub struct SignalGenerator {
    spec: SignalSpec,
    period: f64,
    rng: Pcg32,
    walk: f64,
    tick: u64,
}

impl SignalGenerator {
    pub fn new(spec: SignalSpec, seed: u64, address: &str, period: Duration) -> SignalGenerator {
        let walk = match spec.shape {
            Shape::RandomWalk { start, .. } => start,
            _ => 0.0,
        };
        SignalGenerator {
            spec,
            period: period.as_secs_f64(),
            // A stable per-address seed (std's hasher is not stable across runs).
            rng: Pcg32::seed_from_u64(seed ^ fnv1a(address.as_bytes())),
            walk,
            tick: 0,
        }
    }

    /// The value at the current tick; advances to the next.
    pub fn next_value(&mut self) -> Value {
        let tick = self.tick;
        self.tick += 1;
        let t = tick as f64 * self.period;
        let raw = match &self.spec.shape {
            Shape::Constant(v) => v.clone(),
            Shape::Sine {
                amplitude,
                offset,
                period,
                phase,
            } => Value::Float(offset + amplitude * (std::f64::consts::TAU * (t + phase) / period).sin()),
            Shape::Ramp { from, to, period } => Value::Float(from + (to - from) * ((t % period) / period)),
            Shape::RandomWalk { step, min, max, .. } => {
                if tick > 0 {
                    let delta = self.rng.random_range(-1.0..=1.0) * step;
                    self.walk = (self.walk + delta).clamp(*min, *max);
                }
                Value::Float(self.walk)
            }
            Shape::Counter {
                start,
                increment,
                every,
                rollover,
            } => {
                let n = start.wrapping_add(increment.wrapping_mul(tick / (*every).max(1)));
                Value::UInt(match rollover {
                    Some(r) if *r > 0 => n % r,
                    _ => n,
                })
            }
            Shape::Sequence { values, step } => {
                let index = (t / step) as usize % values.len().max(1);
                values.get(index).cloned().unwrap_or(Value::UInt(0))
            }
        };
        encode(raw, self.spec.encoding)
    }
}

fn encode(value: Value, encoding: Encoding) -> Value {
    match encoding {
        Encoding::Native => value,
        Encoding::Typed(t) => value
            .convert(backplane_model::DataType::Scalar(t))
            .unwrap_or(value),
        Encoding::Registers(kind, order) => {
            let x = value.as_f64().unwrap_or(0.0);
            let bits: u64 = match kind {
                DecodeType::U16 => x.round().clamp(0.0, 65535.0) as u64,
                DecodeType::I16 => u64::from(x.round().clamp(-32768.0, 32767.0) as i16 as u16),
                DecodeType::U32 => x.round().clamp(0.0, 4_294_967_295.0) as u64,
                DecodeType::I32 => {
                    u64::from(x.round().clamp(-2_147_483_648.0, 2_147_483_647.0) as i32 as u32)
                }
                DecodeType::U64 => value.as_u64().unwrap_or(x.max(0.0) as u64),
                DecodeType::I64 => value.as_i64().unwrap_or(x as i64) as u64,
                DecodeType::F32 => u64::from((x as f32).to_bits()),
                DecodeType::F64 => x.to_bits(),
            };
            let words = order.split(bits, kind.words());
            match words.as_slice() {
                [single] => Value::UInt(u64::from(*single)),
                many => Value::Array(many.iter().map(|w| Value::UInt(u64::from(*w))).collect()),
            }
        }
    }
}

/// The kind registered as `simulator`.
#[derive(Debug)]
pub struct SimulatorKind;

impl Kind for SimulatorKind {
    type Settings = SimulatorSettings;

    fn describe(&self) -> &'static str {
        "deterministic simulated signals (sine, ramp, random walk, counter, sequence, constant)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<SimulatorSettings> {
        let seed = table.optional_u64("seed").unwrap_or(0);
        let period = table
            .optional_duration("period")
            .unwrap_or(Duration::from_secs(1));
        if period < Duration::from_millis(10) {
            table.error(
                "period",
                "period must be at least 10ms",
                Some("write e.g. \"500ms\" or \"1s\"".into()),
            );
        }
        let fail_after = table.optional_duration("fail_after");
        let mut signals = BTreeMap::new();
        let mut ok = true;
        match table.optional_table("signals") {
            Some(mut signal_table) => {
                for (key, item) in signal_table.take_remaining() {
                    if key.name.is_empty() || key.name.len() > 128 {
                        key.error("a signal address must be 1 to 128 characters", None);
                        ok = false;
                        continue;
                    }
                    match item.as_table() {
                        Some(mut t) => match parse_signal(&mut t) {
                            Some(spec) => {
                                t.finish();
                                signals.insert(key.name.to_owned(), spec);
                            }
                            None => {
                                t.finish();
                                ok = false;
                            }
                        },
                        None => {
                            item.error(
                                format!("expected a signal table, found {}", item.type_name()),
                                Some(
                                    "write e.g. { signal = \"sine\", amplitude = 1, period = \"60s\" }"
                                        .into(),
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                signal_table.finish();
            }
            None => table.error(
                "signals",
                "a simulator needs a `signals` table",
                Some("[sources.signals] \"addr\" = { signal = \"constant\", value = 1 }".into()),
            ),
        }
        ok.then_some(SimulatorSettings {
            seed,
            period,
            fail_after,
            signals,
        })
    }

    fn check_address(&self, s: &SimulatorSettings, address: &str) -> Result<(), AddressError> {
        if s.signals.contains_key(address) {
            return Ok(());
        }
        let known: Vec<&str> = s.signals.keys().map(String::as_str).take(12).collect();
        Err(AddressError {
            message: format!("the simulator has no signal `{address}`"),
            hint: Some(if known.is_empty() {
                "define it under [sources.signals]".to_owned()
            } else {
                format!("defined signals: {}", known.join(", "))
            }),
        })
    }

    /// Every signal is read each period.
    fn read_period(&self, s: &SimulatorSettings, address: &str) -> Option<Duration> {
        s.signals.contains_key(address).then_some(s.period)
    }

    /// Signals typed as integers, or served as one 16-bit register.
    fn reads_integers(&self, s: &SimulatorSettings, address: &str) -> bool {
        s.signals
            .get(address)
            .is_some_and(|signal| match signal.encoding {
                Encoding::Typed(t) => matches!(t, ScalarType::Int | ScalarType::UInt),
                Encoding::Registers(kind, _) => kind.words() == 1,
                Encoding::Native => false,
            })
    }
}

fn parse_signal(t: &mut Table<'_>) -> Option<SignalSpec> {
    let kind = t.required_str("signal")?;
    let period_secs = |t: &mut Table<'_>, key: &str| -> Option<f64> {
        let d = t.optional_duration(key)?;
        if d.is_zero() {
            t.error(key, format!("`{key}` must be longer than zero"), None);
            return None;
        }
        Some(d.as_secs_f64())
    };
    let shape = match kind {
        "constant" => {
            let item = t.required_item("value")?;
            Shape::Constant(toml_scalar(&item)?)
        }
        "sine" => Shape::Sine {
            amplitude: t.optional_f64("amplitude").unwrap_or(1.0),
            offset: t.optional_f64("offset").unwrap_or(0.0),
            period: period_secs(t, "period").unwrap_or(60.0),
            phase: t.optional_duration("phase").map_or(0.0, |d| d.as_secs_f64()),
        },
        "ramp" => Shape::Ramp {
            from: t.optional_f64("from").unwrap_or(0.0),
            to: t.optional_f64("to").unwrap_or(100.0),
            period: period_secs(t, "period").unwrap_or(60.0),
        },
        "random_walk" => {
            let start = t.optional_f64("start").unwrap_or(0.0);
            let step = t.optional_f64("step").unwrap_or(1.0);
            let min = t.optional_f64("min").unwrap_or(f64::MIN);
            let max = t.optional_f64("max").unwrap_or(f64::MAX);
            if min > max {
                t.error("min", "`min` is greater than `max`", None);
                return None;
            }
            Shape::RandomWalk {
                start: start.clamp(min, max),
                step,
                min,
                max,
            }
        }
        "counter" => {
            let start = t.optional_u64("start").unwrap_or(0);
            let increment = t.optional_u64("increment").unwrap_or(1);
            let every = t.optional_u64("every").unwrap_or(1);
            let rollover = t.optional_u64("rollover");
            if every == 0 {
                t.error("every", "`every` counts ticks and must be at least 1", None);
            }
            if rollover == Some(0) {
                t.error("rollover", "`rollover` must be at least 1", None);
            }
            Shape::Counter {
                start,
                increment,
                every: every.max(1),
                rollover,
            }
        }
        "sequence" => {
            let items = t.required_item("values")?;
            let Some(array) = items.as_array().filter(|a| !a.is_empty()) else {
                items.error("`values` must be a non-empty array", None);
                return None;
            };
            let values: Option<Vec<Value>> = array.iter().map(toml_scalar).collect();
            Shape::Sequence {
                values: values?,
                step: period_secs(t, "step").unwrap_or(10.0),
            }
        }
        other => {
            t.error(
                "signal",
                format!("unknown signal `{other}`"),
                Some("one of: constant, sine, ramp, random_walk, counter, sequence".into()),
            );
            return None;
        }
    };
    let registers = t.optional_str("registers");
    let typed = t.optional_str("type");
    let word_order = t.optional_str("word_order");
    let encoding = match (registers, typed) {
        (Some(_), Some(_)) => {
            t.error("type", "give either `type` or `registers`, not both", None);
            return None;
        }
        (Some(r), None) => {
            let Some(kind) = DecodeType::parse(r) else {
                t.error(
                    "registers",
                    format!("unknown register type `{r}`"),
                    Some("one of: u16, i16, u32, i32, u64, i64, f32, f64".into()),
                );
                return None;
            };
            let order = match word_order.map(|w| (w, WordOrder::parse(w))) {
                None => WordOrder::ABCD,
                Some((_, Some(o))) => o,
                Some((w, None)) => {
                    t.error(
                        "word_order",
                        format!("unknown word order `{w}`"),
                        Some("one of: ABCD, CDAB, BADC, DCBA".into()),
                    );
                    return None;
                }
            };
            Encoding::Registers(kind, order)
        }
        (None, Some(ty)) => match ScalarType::ALL
            .into_iter()
            .find(|s| s.name() == ty && *s != ScalarType::Timestamp)
        {
            Some(s) => Encoding::Typed(s),
            None => {
                t.error(
                    "type",
                    format!("unknown type `{ty}`"),
                    Some("one of: bool, int, uint, float, string".into()),
                );
                return None;
            }
        },
        (None, None) => Encoding::Native,
    };
    if word_order.is_some() && registers.is_none() {
        t.error("word_order", "`word_order` applies only with `registers`", None);
    }
    Some(SignalSpec { shape, encoding })
}

fn toml_scalar(item: &backplane_config::Item<'_>) -> Option<Value> {
    if let Some(b) = item.as_bool() {
        Some(Value::Bool(b))
    } else if let Some(i) = item.as_i64() {
        Some(if i >= 0 {
            Value::UInt(i as u64)
        } else {
            Value::Int(i)
        })
    } else if let Some(f) = item.as_f64() {
        Some(Value::Float(f))
    } else if let Some(s) = item.as_str() {
        Some(Value::String(s.into()))
    } else {
        item.error(
            format!("expected a number, boolean or string, found {}", item.type_name()),
            None,
        );
        None
    }
}

impl SourceKind for SimulatorKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, SimulatorSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let settings = ctx.settings;
        let generators = ctx
            .addresses
            .iter()
            .map(|address| {
                settings
                    .signals
                    .get(&**address)
                    .map(|spec| SignalGenerator::new(spec.clone(), settings.seed, address, settings.period))
                    .ok_or_else(|| {
                        ComponentError::config(format!("simulator `{}`: no signal `{address}`", ctx.name))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(Simulator {
            generators,
            period: settings.period,
            fail_after: settings.fail_after,
        }))
    }
}

struct Simulator {
    generators: Vec<SignalGenerator>,
    period: Duration,
    fail_after: Option<Duration>,
}

impl Source for Simulator {
    fn run(mut self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let started = tokio::time::Instant::now();
            let mut ticker = tokio::time::interval(self.period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = io.cancelled() => return Ok(()),
                    Some(write) = io.next_write() => {
                        let _ = write.reply.send(Err(ComponentError::config("the simulator does not accept writes")));
                        continue;
                    }
                }
                if let Some(limit) = self.fail_after
                    && started.elapsed() >= limit
                {
                    return Err(ComponentError::io(format!("simulated failure after {limit:?} (fail_after)")));
                }
                let now = Timestamp::now();
                let readings = self
                    .generators
                    .iter_mut()
                    .enumerate()
                    .map(|(i, g)| RawReading {
                        address: i as u32,
                        value: Some(g.next_value()),
                        quality: Quality::Good,
                        source_time: Some(now),
                    })
                    .collect();
                if !io.emit(now, readings).await {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(shape: Shape, encoding: Encoding, seed: u64) -> SignalGenerator {
        SignalGenerator::new(
            SignalSpec { shape, encoding },
            seed,
            "addr",
            Duration::from_secs(1),
        )
    }

    fn take(g: &mut SignalGenerator, n: usize) -> Vec<Value> {
        (0..n).map(|_| g.next_value()).collect()
    }

    #[test]
    fn random_walks_repeat_for_the_same_seed_and_differ_for_another() {
        let shape = Shape::RandomWalk {
            start: 10.0,
            step: 1.0,
            min: 0.0,
            max: 20.0,
        };
        let a = take(&mut generator(shape.clone(), Encoding::Native, 1), 100);
        let b = take(&mut generator(shape.clone(), Encoding::Native, 1), 100);
        let c = take(&mut generator(shape, Encoding::Native, 2), 100);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..=20.0).contains(&v.as_f64().unwrap())));
    }

    #[test]
    fn counters_roll_over_at_the_configured_value() {
        let shape = Shape::Counter {
            start: 65534,
            increment: 1,
            every: 1,
            rollover: Some(65536),
        };
        let values = take(&mut generator(shape, Encoding::Native, 0), 4);
        assert_eq!(values, [65534, 65535, 0, 1].map(Value::UInt));
    }

    #[test]
    fn sequences_hold_each_value_for_its_step() {
        let shape = Shape::Sequence {
            values: vec![Value::UInt(1), Value::UInt(2)],
            step: 2.0,
        };
        let values = take(&mut generator(shape, Encoding::Native, 0), 5);
        assert_eq!(values, [1, 1, 2, 2, 1].map(Value::UInt));
    }

    #[test]
    fn sine_and_ramp_follow_their_formulas() {
        let sine = Shape::Sine {
            amplitude: 2.0,
            offset: 10.0,
            period: 4.0,
            phase: 0.0,
        };
        let v = take(&mut generator(sine, Encoding::Native, 0), 2);
        assert!((v[1].as_f64().unwrap() - 12.0).abs() < 1e-9);
        let ramp = Shape::Ramp {
            from: 0.0,
            to: 10.0,
            period: 5.0,
        };
        let v = take(&mut generator(ramp, Encoding::Native, 0), 6);
        assert_eq!(v[1], Value::Float(2.0));
        assert_eq!(v[5], Value::Float(0.0));
    }

    #[test]
    fn register_encoding_round_trips_through_decode() {
        let shape = Shape::Constant(Value::Float(-12.5));
        let mut g = generator(shape, Encoding::Registers(DecodeType::F32, WordOrder::CDAB), 0);
        let regs = g.next_value();
        let decode = backplane_model::Transform::Decode {
            kind: DecodeType::F32,
            word_order: WordOrder::CDAB,
        };
        assert_eq!(decode.apply(&regs), Ok(Value::Float(-12.5)));
        let mut g = generator(
            Shape::Constant(Value::Int(-5)),
            Encoding::Registers(DecodeType::I16, WordOrder::ABCD),
            0,
        );
        assert_eq!(g.next_value(), Value::UInt(0xFFFB));
    }
}
