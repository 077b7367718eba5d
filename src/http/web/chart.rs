//! Horizontal bar charts as inline SVG, drawn on the server: no chart library, no script. Each
//! bar carries its value as text (readable without colour); colours come from CSS classes in
//! app.css (`.chart .bar.s0`, `.s1`), never a `style` attribute. The chart is an image
//! (`role="img"`) named by its `<title>` (`aria-labelledby`) and described by its `<desc>`
//! (`aria-describedby`); the page puts the data table next to it.
use std::fmt::Write;

/// One row of bars: a label and a value per series (`None`: no value, drawn as "–").
pub struct Group {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

pub struct BarChart {
    /// Unique on the page: the ids of the title and description derive from it.
    pub id: &'static str,
    pub title: String,
    pub desc: String,
    /// Series names, shown in a legend when there is more than one.
    pub series: Vec<String>,
    pub groups: Vec<Group>,
    /// The value of a full-width bar; the largest value when `None`.
    pub max: Option<f64>,
    /// Appended to each value ("%", or empty).
    pub unit: &'static str,
    /// Shown instead of bars when there are no groups.
    pub empty: String,
}

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 120.0;
/// Room right of a bar per character of its value text (12 px text), and at least this much.
const CHAR_WIDTH: f64 = 7.0;
const MIN_VALUE_WIDTH: f64 = 40.0;
const BAR_HEIGHT: f64 = 16.0;
const BAR_GAP: f64 = 2.0;
const GROUP_GAP: f64 = 8.0;
const LEGEND_HEIGHT: f64 = 22.0;

/// Text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Characters of a group label that fit left of the bars; longer labels are cut with "…" (the
/// table beside the chart has them whole).
const LABEL_CHARS: usize = 15;

fn label(text: &str) -> String {
    if text.chars().count() <= LABEL_CHARS { text.to_string() } else { text.chars().take(LABEL_CHARS - 1).chain(['…']).collect() }
}

/// A value as shown: whole numbers without decimals, others with one.
pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

impl BarChart {
    /// The width of the bar for `value` in pixels: proportional, the scale's maximum full width.
    pub fn bar_width(&self, value: f64) -> f64 {
        let max = self.scale_max();
        if max <= 0.0 { 0.0 } else { (value.max(0.0) / max).min(1.0) * self.area() }
    }

    /// The width of a full bar: what the labels and the longest value text leave.
    pub fn area(&self) -> f64 {
        let longest =
            self.groups.iter().flat_map(|g| (0..g.values.len()).map(|s| self.value_text(g, s).chars().count())).max().unwrap_or(0);
        WIDTH - LABEL_WIDTH - (longest as f64 * CHAR_WIDTH + 8.0).max(MIN_VALUE_WIDTH)
    }

    /// The text beside bar `s` of `group`; with several series it names its series, so the bars
    /// differ by more than colour.
    fn value_text(&self, group: &Group, s: usize) -> String {
        let value = group.values[s];
        let text = value.map_or("–".to_string(), |v| format!("{}{}", format_value(v), self.unit));
        match self.series.get(s) {
            Some(name) if self.series.len() > 1 => format!("{name}: {text}"),
            _ => text,
        }
    }

    fn scale_max(&self) -> f64 {
        self.max.unwrap_or_else(|| self.groups.iter().flat_map(|g| g.values.iter().flatten()).fold(0.0, |a: f64, v| a.max(*v)))
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let id = self.id;
        let series = self.series.len().max(1) as f64;
        let legend = if self.series.len() > 1 { LEGEND_HEIGHT } else { 0.0 };
        let group_height = series * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP;
        let height = legend + (self.groups.len().max(1) as f64) * group_height;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" aria-labelledby=\"{id}-title\" aria-describedby=\"{id}-desc\" \
             viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" data-chart=\"{id}\">\
             <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
            escape(&self.title),
            escape(&self.desc)
        );
        if self.series.len() > 1 {
            let mut x = LABEL_WIDTH;
            for (i, name) in self.series.iter().enumerate() {
                let _ = write!(
                    svg,
                    "<rect class=\"bar s{i}\" x=\"{x}\" y=\"4\" width=\"12\" height=\"12\"/><text class=\"legend\" x=\"{}\" y=\"14\">{}</text>",
                    x + 16.0,
                    escape(name)
                );
                x += 150.0;
            }
        }
        if self.groups.is_empty() {
            let _ = write!(svg, "<text class=\"empty\" x=\"{LABEL_WIDTH}\" y=\"{}\">{}</text>", legend + BAR_HEIGHT, escape(&self.empty));
        }
        for (g, group) in self.groups.iter().enumerate() {
            let top = legend + g as f64 * group_height;
            let _ = write!(
                svg,
                "<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                LABEL_WIDTH - 6.0,
                top + BAR_HEIGHT - 4.0,
                escape(&label(&group.label))
            );
            for (s, value) in group.values.iter().enumerate() {
                let y = top + s as f64 * (BAR_HEIGHT + BAR_GAP);
                let width = value.map_or(0.0, |v| self.bar_width(v));
                let text = self.value_text(group, s);
                let _ = write!(
                    svg,
                    "<rect class=\"bar s{s}\" x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{width:.1}\" height=\"{BAR_HEIGHT}\"/>\
                     <text class=\"value\" x=\"{:.1}\" y=\"{}\">{}</text>",
                    LABEL_WIDTH + width + 4.0,
                    y + BAR_HEIGHT - 4.0,
                    escape(&text)
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(groups: Vec<Group>, series: usize) -> BarChart {
        BarChart {
            id: "flow",
            title: "Cases <per> day".into(),
            desc: "Bar chart & table".into(),
            series: (0..series).map(|i| format!("S{i}")).collect(),
            groups,
            max: None,
            unit: "",
            empty: "No data".into(),
        }
    }

    fn group(label: &str, values: &[Option<f64>]) -> Group {
        Group { label: label.into(), values: values.to_vec() }
    }

    #[test]
    fn bars_scale_to_the_largest_value_or_the_given_maximum() {
        let c = chart(vec![group("a", &[Some(10.0)]), group("b", &[Some(5.0)]), group("c", &[Some(0.0)])], 1);
        assert_eq!(c.area(), WIDTH - LABEL_WIDTH - MIN_VALUE_WIDTH, "short values leave the least room");
        assert_eq!(c.bar_width(10.0), c.area(), "the largest value fills the area");
        assert_eq!(c.bar_width(5.0), c.area() / 2.0);
        assert_eq!(c.bar_width(0.0), 0.0);
        let percent = BarChart { max: Some(100.0), unit: "%", ..chart(vec![group("w", &[Some(50.0)])], 1) };
        assert_eq!(percent.bar_width(50.0), percent.area() / 2.0, "a fixed maximum, not the largest value");
        assert_eq!(percent.bar_width(150.0), percent.area(), "never past the area");
        // Long value texts take their room from the bars.
        let long = chart(vec![group("a", &[Some(1.0), Some(123456.0)])], 2);
        assert_eq!(long.area(), WIDTH - LABEL_WIDTH - ("S1: 123456".len() as f64 * CHAR_WIDTH + 8.0));
        let svg = percent.svg();
        assert!(svg.contains(">50%</text>"), "{svg}");
    }

    #[test]
    fn an_image_with_title_and_description_escaped() {
        let svg = chart(vec![group("<b>", &[Some(3.0)])], 1).svg();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\" aria-labelledby=\"flow-title\" aria-describedby=\"flow-desc\""), "{svg}");
        assert!(svg.contains("<title id=\"flow-title\">Cases &lt;per&gt; day</title>"), "{svg}");
        assert!(svg.contains("<desc id=\"flow-desc\">Bar chart &amp; table</desc>"), "{svg}");
        assert!(svg.contains(">&lt;b&gt;</text>") && !svg.contains("<b>"), "{svg}");
        assert!(!svg.contains("style") && !svg.contains("fill="), "colours come from CSS classes: {svg}");
    }

    #[test]
    fn empty_data_says_so_and_draws_no_bar() {
        let svg = chart(Vec::new(), 1).svg();
        assert!(svg.contains("<text class=\"empty\""), "{svg}");
        assert!(svg.contains(">No data</text>"));
        assert!(!svg.contains("<rect"), "{svg}");
        // All zero: bars of no width, values still written.
        let zeros = chart(vec![group("a", &[Some(0.0)]), group("b", &[Some(0.0)])], 1).svg();
        assert!(zeros.contains("width=\"0.0\"") && zeros.contains(">0</text>"), "{zeros}");
    }

    #[test]
    fn one_value_fills_the_area_and_a_missing_one_is_a_dash() {
        let one = chart(vec![group("only", &[Some(2.5)])], 1);
        assert!(one.svg().contains(&format!("width=\"{:.1}\"", one.area())), "{}", one.svg());
        assert!(one.svg().contains(">2.5</text>"));
        let missing = chart(vec![group("w1", &[None])], 1).svg();
        assert!(missing.contains(">–</text>") && missing.contains("width=\"0.0\""), "{missing}");
    }

    #[test]
    fn long_labels_are_cut_to_fit_left_of_the_bars() {
        let svg = chart(vec![group("TSJJ Complaint or suggestion", &[Some(1.0)])], 1).svg();
        assert!(svg.contains(">TSJJ Complaint…</text>"), "{svg}");
        assert_eq!(label("2026-11-30"), "2026-11-30");
    }

    #[test]
    fn several_series_have_a_legend_and_name_their_series_in_each_value() {
        let svg = chart(vec![group("d1", &[Some(4.0), Some(1.0)])], 2).svg();
        assert!(svg.contains("class=\"legend\""), "{svg}");
        assert!(svg.contains(">S0: 4</text>") && svg.contains(">S1: 1</text>"), "{svg}");
        assert!(svg.contains("class=\"bar s0\"") && svg.contains("class=\"bar s1\""));
    }
}
