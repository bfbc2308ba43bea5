// Fills that tell series apart without colour: each outcome has its own colour (Okabe-Ito,
// safe for the common colour blindnesses) AND its own pattern, drawn on a small tile canvas.
// Chart.js accepts a CanvasPattern wherever it takes a colour, legends included.

export const OUTCOME_STYLE = {
  answered: { label: "Answered", color: "#009E73", pattern: "solid" },
  abandoned: { label: "Abandoned (caller hung up)", color: "#D55E00", pattern: "diagonal" },
  busy: { label: "Busy", color: "#E69F00", pattern: "dots" },
  no_answer: { label: "No answer", color: "#56B4E9", pattern: "horizontal" },
  failed: { label: "Failed", color: "#CC79A7", pattern: "cross" },
  redirected: { label: "Redirected (Voice Continuity)", color: "#0072B2", pattern: "vertical" },
  ended_in_flow: { label: "Ended by the flow", color: "#6b7280", pattern: "zigzag" },
};
export const OUTCOMES = Object.keys(OUTCOME_STYLE);

const cache = new Map();

export function patternFill(kind, color) {
  const key = `${kind}:${color}`;
  if (cache.has(key)) return cache.get(key);
  if (kind === "solid" || typeof document === "undefined") return color;
  const size = 10;
  const tile = document.createElement("canvas");
  tile.width = tile.height = size;
  const g = tile.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, size, size);
  g.fillStyle = color;
  g.strokeStyle = color;
  g.lineWidth = 2.5;
  g.beginPath();
  if (kind === "diagonal") {
    g.moveTo(0, size); g.lineTo(size, 0);
    g.moveTo(-size / 2, size / 2); g.lineTo(size / 2, -size / 2);
    g.moveTo(size / 2, size * 1.5); g.lineTo(size * 1.5, size / 2);
    g.stroke();
  } else if (kind === "horizontal") {
    g.fillRect(0, 3, size, 4);
  } else if (kind === "vertical") {
    g.fillRect(3, 0, 4, size);
  } else if (kind === "dots") {
    g.arc(size / 2, size / 2, 3, 0, Math.PI * 2);
    g.fill();
  } else if (kind === "cross") {
    g.moveTo(0, 0); g.lineTo(size, size); g.moveTo(size, 0); g.lineTo(0, size);
    g.stroke();
  } else if (kind === "zigzag") {
    g.moveTo(0, 7); g.lineTo(size / 2, 3); g.lineTo(size, 7);
    g.stroke();
  }
  const pattern = g.createPattern(tile, "repeat");
  cache.set(key, pattern);
  return pattern;
}

export function outcomeFill(outcome) {
  const s = OUTCOME_STYLE[outcome];
  return patternFill(s.pattern, s.color);
}
