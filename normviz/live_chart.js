// A live frame's chart: one Plotly instance per key, updated in place with Plotly.react (no remount, no
// blank frame). Plotly itself is the plotly Python package's own plotly.min.js, served from ./static.
function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  return (window.normvizPlotly ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = new URL("app/static/plotly.min.js", document.baseURI).href;
    script.onload = () => resolve(window.Plotly);
    script.onerror = reject;
    document.head.appendChild(script);
  }));
}

// The app's colours (light or dark theme) on a transparent background, as st.plotly_chart draws them.
function themed(layout, { color: ink, fontFamily }) {
  const grid = ink.replace("rgb(", "rgba(").replace(")", ", 0.15)");
  const axes = Object.keys(layout).filter((k) => /^[xy]axis\d*$/.test(k));
  for (const axis of new Set(["xaxis", "yaxis", ...axes])) {
    layout[axis] = { automargin: true, gridcolor: grid, zerolinecolor: grid, linecolor: grid, ...layout[axis] };
  }
  layout.font = { family: fontFamily, ...layout.font, color: ink };
  layout.paper_bgcolor = layout.plot_bgcolor = "rgba(0,0,0,0)";
  layout.autosize = true;
  delete layout.template;
  return layout;
}

export default function ({ data, parentElement }) {
  let plot = parentElement.querySelector("div.normviz-live-plot");
  if (!plot) {
    plot = document.createElement("div");
    plot.className = "normviz-live-plot";
    plot.dataset.testid = "normvizLiveChart";
    plot.style.width = "100%";
    parentElement.appendChild(plot);
  }
  const figure = JSON.parse(data.figure);
  const layout = themed(figure.layout || {}, getComputedStyle(parentElement));
  loadPlotly().then((Plotly) => Plotly.react(plot, figure.data, layout, { ...data.config, responsive: true }));
}
