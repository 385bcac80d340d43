// Small bar charts as inline SVG: no library, no build step. Labels are text nodes.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// groups: [{label, bars: [{value, color, title}]}]; values null are drawn as "—".
function groupedBars(container, groups, unit) {
  const width = 320, height = 130, left = 30, bottom = 18, top = 14;
  const values = groups.flatMap(g => g.bars.map(b => b.value || 0));
  const max = Math.max(1, ...values);
  const svg = svgEl("svg", {viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img"});
  const slot = (width - left) / Math.max(1, groups.length);
  svg.append(svgEl("line", {x1: left, y1: height - bottom, x2: width, y2: height - bottom,
                            stroke: "#999"}));
  svg.append(svgEl("text", {x: 0, y: top - 2}, `${Math.round(max)} ${unit}`));
  groups.forEach((group, i) => {
    const x0 = left + i * slot + slot * 0.15;
    const barWidth = (slot * 0.7) / Math.max(1, group.bars.length);
    group.bars.forEach((bar, j) => {
      const h = ((bar.value || 0) / max) * (height - bottom - top);
      const x = x0 + j * barWidth;
      const rect = svgEl("rect", {x, y: height - bottom - h, width: barWidth - 2,
                                  height: Math.max(h, bar.value ? 1 : 0), fill: bar.color});
      rect.append(svgEl("title", {}, bar.title));
      svg.append(rect);
      const shown = bar.value === null ? "—" : String(Math.round(bar.value));
      svg.append(svgEl("text", {x: x + 1, y: height - bottom - h - 2}, shown));
    });
    svg.append(svgEl("text", {x: x0, y: height - 4}, group.label));
  });
  container.replaceChildren(svg);
  return svg;
}

// items: [{label, value}] as horizontal bars, largest first.
function horizontalBars(container, items) {
  const rowHeight = 16, left = 90, width = 320;
  const max = Math.max(1, ...items.map(i => i.value));
  const svg = svgEl("svg", {viewBox: `0 0 ${width} ${Math.max(1, items.length) * rowHeight + 4}`,
                            width: "100%", role: "img"});
  items.forEach((item, i) => {
    const y = i * rowHeight + 2;
    svg.append(svgEl("text", {x: 0, y: y + 11}, item.label.slice(0, 14)));
    const w = (item.value / max) * (width - left - 30);
    svg.append(svgEl("rect", {x: left, y, width: Math.max(w, 1), height: rowHeight - 4,
                              fill: "#3e7cb1"}));
    svg.append(svgEl("text", {x: left + w + 4, y: y + 11}, String(item.value)));
  });
  if (!items.length) svg.append(svgEl("text", {x: 0, y: 14}, "no incidents"));
  container.replaceChildren(svg);
  return svg;
}

window.charts = {groupedBars, horizontalBars};
