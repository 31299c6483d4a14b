//! Chart geometry: turning a series into SVG coordinates.

/// Width and height of every chart's SVG viewBox; the SVG stretches to its box.
pub const W: f64 = 300.0;
pub const H: f64 = 80.0;

/// `points` of an SVG `<polyline>` for `values` over a window of `slots`
/// samples (newest at the right edge), scaled so that `max` touches the top.
pub fn polyline(values: &[f64], slots: usize, max: f64) -> String {
    let slots = slots.max(2);
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let start = slots.saturating_sub(values.len());
    let step = W / (slots - 1) as f64;
    let mut out = String::with_capacity(values.len() * 12);
    for (i, v) in values.iter().enumerate() {
        let x = (start + i) as f64 * step;
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let y = H - (v / max).min(1.0) * H;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{:.1},{:.1}", x, y));
    }
    out
}

/// The same line closed down to the baseline, for a filled area.
pub fn area(values: &[f64], slots: usize, max: f64) -> String {
    if values.is_empty() {
        return String::new();
    }
    let line = polyline(values, slots, max);
    let slots = slots.max(2);
    let step = W / (slots - 1) as f64;
    let first_x = slots.saturating_sub(values.len()) as f64 * step;
    let last_x = (slots - 1) as f64 * step;
    format!("{first_x:.1},{H:.1} {line} {last_x:.1},{H:.1}")
}

/// Y coordinate of a horizontal line at `value` on a `max` scale.
pub fn level(value: f64, max: f64) -> f64 {
    let max = if max > 0.0 { max } else { 1.0 };
    H - (value / max).clamp(0.0, 1.0) * H
}

/// A scale with some headroom: the larger of the limit and the peak, plus 10%.
pub fn scale(peak: f64, limit: Option<f64>, floor: f64) -> f64 {
    let top = limit.map_or(peak, |l| l.max(peak)).max(floor);
    top * 1.1
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn newest_sample_sits_at_the_right_edge() {
        assert_eq!(
            polyline(&[0.0, 50.0, 100.0], 3, 100.0),
            "0.0,80.0 150.0,40.0 300.0,0.0"
        );
        // Two samples in a window of five: they take the last two slots.
        assert_eq!(polyline(&[10.0, 10.0], 5, 10.0), "225.0,0.0 300.0,0.0");
        assert_eq!(polyline(&[], 5, 10.0), "");
    }

    #[test]
    fn values_are_clamped_into_the_box() {
        assert_eq!(
            polyline(&[-5.0, 500.0, f64::NAN], 3, 100.0),
            "0.0,80.0 150.0,0.0 300.0,80.0"
        );
        assert_eq!(polyline(&[1.0, 1.0], 2, 0.0), "0.0,0.0 300.0,0.0");
        assert_eq!(
            area(&[0.0, 100.0], 2, 100.0),
            "0.0,80.0 0.0,80.0 300.0,0.0 300.0,80.0"
        );
        assert_eq!(area(&[], 2, 100.0), "");
    }

    #[test]
    fn levels_and_scales() {
        assert_eq!(level(50.0, 100.0), 40.0);
        assert_eq!(level(500.0, 100.0), 0.0);
        assert!((scale(30.0, Some(64.0), 1.0) - 70.4).abs() < 1e-9);
        assert!((scale(80.0, Some(64.0), 1.0) - 88.0).abs() < 1e-9);
        assert!((scale(0.0, None, 100.0) - 110.0).abs() < 1e-9);
    }
}
