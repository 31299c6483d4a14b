//! Live SVG charts of CPU, memory and pids, from the stats ring buffer.

use crate::chart::{self, H, W};
use crate::format;
use crate::history::{StatsHistory, HISTORY};
use std::rc::Rc;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct ChartsProps {
    pub history: Option<Rc<StatsHistory>>,
}

struct Series {
    class: &'static str,
    values: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn chart_card(
    title: &'static str,
    value: String,
    sub: String,
    series: Vec<Series>,
    max: f64,
    limit: Option<(f64, String)>,
    hot: bool,
    test_id: &'static str,
) -> Html {
    let lines = series.iter().map(|s| {
        html! {
            <>
                <polygon class={classes!("area", s.class)} points={chart::area(&s.values, HISTORY, max)} />
                <polyline class={classes!("line", s.class)} points={chart::polyline(&s.values, HISTORY, max)} />
            </>
        }
    });
    let limit_line = limit.as_ref().map(|(v, _)| {
        let y = chart::level(*v, max);
        html! {
            <line class="limit" x1="0" x2={W.to_string()} y1={format!("{y:.1}")} y2={format!("{y:.1}")} />
        }
    });
    // The label is HTML over the SVG: text inside a stretched SVG
    // (preserveAspectRatio="none") would be stretched with it.
    let limit_label = limit.as_ref().map(|(v, label)| {
        let top = chart::level(*v, max) / H * 100.0;
        html! {
            <span class="limit-label" style={format!("top:calc({top:.1}% - 14px)")}>{label.clone()}</span>
        }
    });
    html! {
        <div class={classes!("chart", hot.then_some("hot"))} data-testid={test_id}>
            <div class="chart-head">
                <span class="chart-title">{title}</span>
                <span class="chart-value">{value}</span>
            </div>
            <div class="chart-plot">
                <svg viewBox={format!("0 0 {W} {H}")} preserveAspectRatio="none" role="img" aria-label={title}>
                    <line class="grid" x1="0" x2={W.to_string()} y1={(H / 2.0).to_string()} y2={(H / 2.0).to_string()} />
                    { for lines }
                    { for limit_line }
                </svg>
                { for limit_label }
            </div>
            <div class="chart-sub" title={sub.clone()}>{sub}</div>
        </div>
    }
}

#[function_component(Charts)]
pub fn charts(props: &ChartsProps) -> Html {
    let Some(h) = props.history.as_ref().filter(|h| !h.samples().is_empty()) else {
        return html! {
            <div class="charts empty">
                { for ["CPU", "Memory", "PIDs"].iter().map(|t| html! {
                    <div class="chart placeholder">
                        <div class="chart-head"><span class="chart-title">{*t}</span><span class="chart-value">{"—"}</span></div>
                        <svg viewBox={format!("0 0 {W} {H}")} preserveAspectRatio="none"><line class="grid" x1="0" x2={W.to_string()} y1={(H/2.0).to_string()} y2={(H/2.0).to_string()} /></svg>
                        <div class="chart-sub">{"waiting for the stats stream"}</div>
                    </div>
                }) }
            </div>
        };
    };
    let samples = h.samples();
    let last = *samples.last().expect("not empty");
    let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_pct).collect();
    let thr: Vec<f64> = samples.iter().map(|s| s.throttled_pct).collect();
    let mem: Vec<f64> = samples.iter().map(|s| s.memory as f64).collect();
    let pids: Vec<f64> = samples.iter().map(|s| s.pids as f64).collect();
    let peak = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);

    let cpu_max = chart::scale(peak(&cpu), last.cpu_limit_pct, 100.0);
    let cpu_limit = last.cpu_limit_pct.map(|l| {
        (
            l,
            format!("limit {}", format::cpu_millis((l * 10.0) as u32)),
        )
    });
    let throttled = last.throttled_pct > 1.0;
    let cpu_card = chart_card(
        "CPU",
        format::percent(last.cpu_pct),
        if throttled {
            format!(
                "throttled {} of the time",
                format::percent(last.throttled_pct)
            )
        } else {
            "% of one core · red: throttled".into()
        },
        vec![
            Series {
                class: "cpu",
                values: cpu,
            },
            Series {
                class: "throttle",
                values: thr,
            },
        ],
        cpu_max,
        cpu_limit,
        throttled,
        "chart-cpu",
    );

    let mem_limit = last.memory_limit.map(|l| l as f64);
    let mem_max = chart::scale(peak(&mem), mem_limit, 16.0 * 1024.0 * 1024.0);
    let mem_hot = last
        .memory_limit
        .is_some_and(|l| last.memory as f64 >= 0.9 * l as f64);
    let mem_card = chart_card(
        "Memory",
        format::bytes(last.memory),
        match last.memory_limit {
            Some(l) => format!("of {} (memory.max)", format::bytes(l)),
            None => "no limit".into(),
        },
        vec![Series {
            class: "mem",
            values: mem,
        }],
        mem_max,
        last.memory_limit
            .map(|l| (l as f64, format!("limit {}", format::bytes(l)))),
        mem_hot,
        "chart-memory",
    );

    let pids_limit = last.pids_limit.map(|l| l as f64);
    let pids_max = chart::scale(peak(&pids), pids_limit, 8.0);
    let pids_hot = last
        .pids_limit
        .is_some_and(|l| last.pids as f64 >= 0.9 * l as f64);
    let pids_card = chart_card(
        "PIDs",
        format::of_limit(last.pids, last.pids_limit),
        match last.pids_limit {
            Some(_) => "tasks against pids.max".into(),
            None => "tasks (no pids limit)".into(),
        },
        vec![Series {
            class: "pids",
            values: pids,
        }],
        pids_max,
        last.pids_limit.map(|l| (l as f64, format!("limit {l}"))),
        pids_hot,
        "chart-pids",
    );
    html! { <div class="charts">{cpu_card}{mem_card}{pids_card}</div> }
}
