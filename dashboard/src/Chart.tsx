import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  readonly label: string;
  readonly stroke: string;
  /** Dashed (totals over instances). */
  readonly dash?: boolean;
}

/**
 * A live time-series chart (uPlot). `data[0]` are times in seconds, then one
 * array per series (null where a series has no value). The plot is created
 * again when the series change (an instance joins or leaves) and otherwise
 * only gets `setData`. The points it holds are mirrored in `data-points` for
 * the e2e test (read from the plot itself, not from the props).
 */
export function Chart(props: {
  title: string;
  testId: string;
  series: readonly ChartSeries[];
  data: uPlot.AlignedData;
  unit?: string;
}) {
  const { title, testId, series, data, unit } = props;
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(data);
  latest.current = data;
  const seriesKey = JSON.stringify(series);

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const width = () => Math.max(280, Math.floor(el.clientWidth));
    const opts: uPlot.Options = {
      width: width(),
      height: 200,
      legend: { show: true, live: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max * 1.1)] } },
      axes: [{}, { label: unit ?? "", size: 50 }],
      series: [
        {},
        ...(JSON.parse(seriesKey) as ChartSeries[]).map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 2,
          spanGaps: false,
          points: { show: false },
          ...(s.dash === true ? { dash: [6, 4] } : {}),
        })),
      ],
    };
    const u = new uPlot(opts, latest.current, el);
    plot.current = u;
    el.dataset.points = String(u.data[0]?.length ?? 0);
    const resize = new ResizeObserver(() => u.setSize({ width: width(), height: 200 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [seriesKey, unit]);

  useEffect(() => {
    const u = plot.current;
    const el = box.current;
    if (u === null || el === null) return;
    u.setData(data);
    el.dataset.points = String(u.data[0]?.length ?? 0);
  }, [data]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} data-testid={testId} data-series={series.length} />
    </figure>
  );
}
