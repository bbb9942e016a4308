import { useMemo } from "react";
import type uPlot from "uplot";
import type { InstanceStats } from "@tourcast/bindings";
import { useStats, type StatsSample } from "@tourcast/bindings/react";
import { Chart, type ChartSeries } from "./Chart";

/** Samples kept: 10 minutes at the default 5 s interval. */
const MAX_SAMPLES = 120;
const COLOURS = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#b45309"];
const TOTAL = "#111827";

/** The admin page (`#/admin`): live figures of every gateway instance. */
export default function Admin({ search }: { search: string }) {
  const { stats, history, error, subscribed, refresh } = useStats(undefined, { maxSamples: MAX_SAMPLES });

  // Every instance seen in the window, in a stable order (one colour each).
  const instanceIds = useMemo(() => {
    const ids = new Set<string>();
    for (const sample of history) for (const i of sample.stats.instances) ids.add(i.instanceId);
    return [...ids].sort();
  }, [history]);

  const charts = useMemo(() => {
    const x = history.map((s) => s.at / 1000);
    const perInstance = (pick: (i: InstanceStats) => number) =>
      instanceIds.map((id) =>
        history.map((s: StatsSample) => {
          const instance = s.stats.instances.find((i) => i.instanceId === id);
          return instance === undefined ? null : pick(instance);
        }),
      );
    const instanceSeries = (suffix: string): ChartSeries[] =>
      instanceIds.map((id, n) => ({ label: `${id}${suffix}`, stroke: COLOURS[n % COLOURS.length] ?? TOTAL }));
    const connections: uPlot.AlignedData = [x, history.map((s) => s.stats.connectedClients), ...perInstance((i) => i.connectedClients)];
    const rates: uPlot.AlignedData = [
      x,
      history.map((s) => s.stats.eventsPerSecond),
      history.map((s) => s.stats.deliveriesPerSecond),
    ];
    const deliveries: uPlot.AlignedData = [x, ...perInstance((i) => i.deliveriesPerSecond)];
    return {
      connections: { data: connections, series: [{ label: "total", stroke: TOTAL, dash: true }, ...instanceSeries("")] },
      rates: {
        data: rates,
        series: [
          { label: "events/s", stroke: "#2563eb" },
          { label: "deliveries/s", stroke: "#16a34a" },
        ],
      },
      deliveries: { data: deliveries, series: instanceSeries("") },
    };
  }, [history, instanceIds]);

  const back = `${search}#/`;
  return (
    <div className="page admin">
      <header className="top">
        <h1>
          tourcast <span className="subtitle">admin · live gateway statistics</span>
        </h1>
        <nav className="nav">
          <a href={back}>Availability</a>
        </nav>
      </header>

      {error !== undefined && (
        <p className="banner" role="alert" data-testid="stats-error" data-code={error.code}>
          {error.code === "forbidden"
            ? "Statistics are for admins: open this page with ?token=<a token with the admin claim> (tourcast token --admin …), or run the gateway with --admin-open (JWT off, trusted networks only)."
            : `Statistics unavailable: ${error.message}`}
        </p>
      )}

      {error === undefined && stats === undefined && (
        <p className="empty" data-testid="stats-waiting">
          {subscribed ? "Waiting for the first statistics…" : "Connecting to the gateway…"}
        </p>
      )}

      {stats !== undefined && (
        <main>
          <section className="totals" aria-label="Totals" data-testid="totals">
            <Figure label="connected clients" value={stats.connectedClients} testId="total-clients" />
            <Figure label="JSON / protobuf" value={`${stats.clientsByEncoding.json} / ${stats.clientsByEncoding.proto}`} />
            {stats.clientsByTransport !== undefined && (
              <Figure
                label="WebSocket / SSE"
                value={`${stats.clientsByTransport.websocket} / ${stats.clientsByTransport.sse}`}
                testId="total-transports"
              />
            )}
            <Figure label="events/s" value={round(stats.eventsPerSecond)} testId="total-eps" />
            <Figure label="deliveries/s" value={round(stats.deliveriesPerSecond)} testId="total-dps" />
            <Figure label="slow-client disconnects" value={stats.slowClientDisconnects} />
            <Figure label="instances" value={stats.instances.length} testId="total-instances" />
          </section>

          <section className="charts">
            <Chart title="Connections (total and per instance)" testId="chart-connections" {...charts.connections} />
            <Chart title="Events/s and deliveries/s (all instances)" testId="chart-rates" unit="/s" {...charts.rates} />
            <Chart title="Deliveries/s per instance" testId="chart-deliveries" unit="/s" {...charts.deliveries} />
          </section>

          <section aria-label="Instances">
            <h2 className="section">Instances</h2>
            <table className="instances" data-testid="instances">
              <thead>
                <tr>
                  <th>instance</th>
                  <th>clients</th>
                  <th>events/s</th>
                  <th>deliveries/s</th>
                  <th>slow disconnects</th>
                  <th>source</th>
                  <th>uptime</th>
                  <th>top tours</th>
                </tr>
              </thead>
              <tbody>
                {stats.instances.map((i) => (
                  <tr key={i.instanceId} data-instance-id={i.instanceId}>
                    <td>{i.instanceId}</td>
                    <td>
                      {i.connectedClients}{" "}
                      <span className="dim">
                        ({i.clientsByEncoding.json} json, {i.clientsByEncoding.proto} proto
                        {i.clientsByTransport !== undefined && `; ${i.clientsByTransport.sse} sse`})
                      </span>
                    </td>
                    <td>{round(i.eventsPerSecond)}</td>
                    <td>{round(i.deliveriesPerSecond)}</td>
                    <td>{i.slowClientDisconnects}</td>
                    <td>
                      {i.sourceKind} · <span className={`source ${i.sourceState}`}>{i.sourceState}</span>
                    </td>
                    <td>{uptime(i.uptimeSeconds)}</td>
                    <td>{i.topTours.map((t) => `${t.tourId} (${t.subscribers})`).join(", ") || "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>

          <footer className="foot">
            <span data-testid="stats-samples">
              {history.length} sample{history.length === 1 ? "" : "s"} · every {stats.intervalSeconds} s · last at{" "}
              {new Date(stats.timestamp).toLocaleTimeString()}
            </span>
            <button type="button" className="refresh" onClick={() => void refresh().catch(() => undefined)}>
              Refresh now
            </button>
          </footer>
        </main>
      )}
    </div>
  );
}

function Figure({ label, value, testId }: { label: string; value: number | string; testId?: string }) {
  return (
    <div className="figure">
      <span className="value" data-testid={testId}>
        {value}
      </span>
      <span className="label">{label}</span>
    </div>
  );
}

const round = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

function uptime(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}
