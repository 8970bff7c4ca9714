// Memory growth per day as an SVG bar chart, drawn here (no chart library: two series of bars, an axis
// and labels are less code than vendoring one). Each bar has a <title>, and the same numbers come as a table.

import { count, h, s } from "./dom.js";

const WIDTH = 720;
const HEIGHT = 220;
const PAD = { top: 12, right: 8, bottom: 28, left: 44 };

/** series: [{key, label, className}]; days: [{day: "YYYY-MM-DD", [key]: n}], oldest first. */
export function barChart(days, series, caption) {
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const top = niceCeiling(Math.max(1, ...days.flatMap((day) => series.map(({ key }) => day[key] || 0))));
  const slot = plotWidth / Math.max(1, days.length);
  const bar = Math.max(1, (slot * 0.8) / series.length);
  const y = (value) => PAD.top + plotHeight - (value / top) * plotHeight;

  const grid = (top % 2 === 0 ? [0, 0.5, 1] : [0, 1]).map((share) =>
    s(
      "g",
      { class: "tick" },
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top * share), y2: y(top * share) }),
      s("text", { x: PAD.left - 6, y: y(top * share) + 4, "text-anchor": "end" }, count(top * share)),
    ),
  );
  const labelEvery = Math.max(1, Math.ceil(days.length / 8));
  const columns = days.map((day, index) => {
    const x = PAD.left + index * slot + slot * 0.1;
    return s(
      "g",
      {},
      series.map(({ key, label, className }, at) => {
        const value = day[key] || 0;
        return s(
          "rect",
          {
            class: className,
            x: x + at * bar,
            y: y(value),
            width: Math.max(1, bar - 1),
            height: Math.max(0, y(0) - y(value)),
          },
          s("title", {}, `${day.day}: ${count(value)} ${label}`),
        );
      }),
      (days.length - 1 - index) % labelEvery === 0 // counted from the newest day, which always has its label
        ? s("text", { class: "day", x: x + (bar * series.length) / 2, y: HEIGHT - 8, "text-anchor": "middle" }, shortDay(day.day))
        : null,
    );
  });
  return h(
    "figure",
    { class: "chart" },
    s(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": caption },
      grid,
      columns,
    ),
    h(
      "figcaption",
      {},
      series.map(({ label, className }) => h("span", { class: "legend" }, h("span", { class: `swatch ${className}` }), label)),
    ),
  );
}

const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

function shortDay(iso) {
  return dayFormat.format(new Date(`${iso}T00:00:00Z`));
}

function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}
