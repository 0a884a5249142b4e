//! The request mix (`--mix create=50,list=50`) and the deterministic choice of each request.

use std::fmt;
use std::str::FromStr;

/// One kind of request the generator can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `POST /channels/{id}/messages` (answers only after the durable write).
    Create,
    /// `GET /channels/{id}/messages?limit=50`, newest first.
    List,
    /// `GET /channels/{id}`.
    Channel,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Create, Op::List, Op::Channel];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::List => "list",
            Op::Channel => "channel",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Op::Create => 0,
            Op::List => 1,
            Op::Channel => 2,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| format!("unknown op {s:?} (expected create, list or channel)"))
    }
}

/// Weighted operations; weights are relative (`create=1,list=3` is 25 % / 75 %).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Op, u32)>,
    total: u64,
}

impl Mix {
    pub fn weights(&self) -> &[(Op, u32)] {
        &self.weights
    }

    /// The operation for request `i`: a fixed function of `(seed, i)`, so runs are repeatable.
    pub fn pick(&self, seed: u64, i: u64) -> Op {
        let mut r = splitmix64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % self.total;
        for &(op, w) in &self.weights {
            if r < u64::from(w) {
                return op;
            }
            r -= u64::from(w);
        }
        // Unreachable while `total` is the sum of the weights; fall back to the first op.
        self.weights.first().map_or(Op::Create, |&(op, _)| op)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, w)) in self.weights.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{op}={w}")?;
        }
        Ok(())
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights: Vec<(Op, u32)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not op=weight"))?;
            let op: Op = name.trim().parse()?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|e| format!("weight in {part:?}: {e}"))?;
            if weights.iter().any(|&(o, _)| o == op) {
                return Err(format!("op {op} appears twice in the mix"));
            }
            if w > 0 {
                weights.push((op, w));
            }
        }
        let total: u64 = weights.iter().map(|&(_, w)| u64::from(w)).sum();
        if total == 0 {
            return Err("the mix needs at least one op with a positive weight".to_owned());
        }
        Ok(Mix { weights, total })
    }
}

/// SplitMix64: a tiny, good-enough mixer for spreading requests over ops, channels and users.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let m: Mix = "create=50, list=50".parse().unwrap();
        assert_eq!(m.to_string(), "create=50,list=50");
        assert!("create".parse::<Mix>().is_err());
        assert!("create=0".parse::<Mix>().is_err());
        assert!("create=1,create=2".parse::<Mix>().is_err());
        assert!("delete=1".parse::<Mix>().is_err());
    }

    #[test]
    fn pick_follows_weights() {
        let m: Mix = "create=1,list=3".parse().unwrap();
        let n = 100_000;
        let creates = (0..n).filter(|&i| m.pick(7, i) == Op::Create).count();
        let share = creates as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.01, "create share {share}");
        // Deterministic.
        assert_eq!(m.pick(7, 12345), m.pick(7, 12345));
    }
}
