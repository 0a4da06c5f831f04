//! Median and spread over runs, quantiles of latency histograms, and the number formats of the
//! report.

use hdrhistogram::Histogram;

/// The median and range of one quantity over the runs of a point.
///
/// Written out rather than taken from a crate: it is a sort and a middle index over a handful of
/// runs (3 by default), and the values are rates and ratios, exact to the last digit shown.
/// Latency distributions, where the values are many, go through hdrhistogram (`quantile_ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// `None` when no finite value was measured.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Self { median, min: v[0], max: v[n - 1], n })
    }

    /// `median (min–max)`, or just the value for a single run, in the given format.
    pub fn show(&self, format: fn(f64) -> String) -> String {
        if self.n > 1 {
            format!("{} ({}–{})", format(self.median), format(self.min), format(self.max))
        } else {
            format(self.median)
        }
    }
}

/// The `q` quantile (0..=1; 1 is the highest value) of a histogram of microseconds, in ms, to
/// its 3 significant digits; NaN when nothing was recorded, so that `Spread::of` leaves the run
/// out.
pub fn quantile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    if histogram.is_empty() { f64::NAN } else { histogram.value_at_quantile(q) as f64 / 1000.0 }
}

/// `show` for an optional spread: a dash when nothing was measured.
pub fn show(spread: Option<Spread>, format: fn(f64) -> String) -> String {
    spread.map_or_else(|| "–".to_owned(), |s| s.show(format))
}

/// A rate with thousands separators: `7,850`.
pub fn rate(x: f64) -> String {
    let rounded = x.round();
    if !rounded.is_finite() {
        return "–".to_owned();
    }
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if rounded < 0.0 { format!("-{out}") } else { out }
}

/// Milliseconds with about three significant digits: `0.412`, `2.05`, `13.1`, `312`.
pub fn ms(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.3}")
    } else if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        rate(x)
    }
}

/// A ratio: `1.23`.
pub fn ratio(x: f64) -> String {
    format!("{x:.2}")
}

/// A percentage of the machine: `37%`.
pub fn pct(x: f64) -> String {
    format!("{x:.0}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of([4.0, 1.0, 2.0, 3.0]).expect("values");
        assert_eq!(s.median, 2.5);
        assert_eq!(Spread::of([f64::NAN]), None);
    }

    #[test]
    fn histogram_quantiles_in_ms() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
        for micros in [1_000, 2_000, 3_000, 250_000] {
            histogram.record(micros).expect("in bounds");
        }
        assert_eq!(quantile_ms(&histogram, 0.5), 2.0);
        assert!((quantile_ms(&histogram, 1.0) - 250.0).abs() < 0.25, "max to 3 significant digits");
        assert!(quantile_ms(&Histogram::<u64>::new(3).expect("histogram"), 0.5).is_nan());
    }

    #[test]
    fn formats() {
        assert_eq!(rate(7850.4), "7,850");
        assert_eq!(rate(1_234_567.0), "1,234,567");
        assert_eq!(rate(999.0), "999");
        assert_eq!(ms(0.4123), "0.412");
        assert_eq!(ms(13.14), "13.1");
        assert_eq!(Spread::of([1.0, 2.0, 3.0]).expect("values").show(ratio), "2.00 (1.00–3.00)");
        assert_eq!(show(None, ratio), "–");
    }
}
