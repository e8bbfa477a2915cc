// Scrubbing previews: a seek bar under the player that shows the storyboard tile of the
// time under the pointer. The storyboard is the video document's `storyboardUrl`, a WebVTT
// file whose cues name sprite regions (`sprite_000.jpg#xywh=x,y,w,h`, docs/streaming.md).
import { el } from "./ui";

export interface StoryboardCue {
  start: number;
  end: number;
  image: string; // absolute URL of the sprite sheet
  x: number;
  y: number;
  w: number;
  h: number;
}

function seconds(stamp: string): number {
  const parts = stamp.split(":").map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

/** The cues of a storyboard VTT; sprite URIs are resolved against the VTT's URL. */
export function parseStoryboard(text: string, vttUrl: string): StoryboardCue[] {
  const lines = text.split(/\r?\n/);
  const cues: StoryboardCue[] = [];
  for (let i = 0; i < lines.length - 1; i++) {
    const m = /^([\d:.]+)\s+-->\s+([\d:.]+)/.exec(lines[i]);
    if (!m) continue;
    const [uri, frag = ""] = lines[i + 1].trim().split("#xywh=");
    const [x, y, w, h] = frag.split(",").map(Number);
    if ([x, y, w, h].some((v) => Number.isNaN(v))) continue;
    cues.push({ start: seconds(m[1]), end: seconds(m[2]), image: new URL(uri, vttUrl).href, x, y, w, h });
  }
  return cues;
}

/** The cue shown at time `t` (the last one past the end). */
export function cueAt(cues: StoryboardCue[], t: number): StoryboardCue | null {
  return cues.find((c) => t >= c.start && t < c.end) ?? cues[cues.length - 1] ?? null;
}

export class StoryboardBar {
  readonly root: HTMLElement;
  private readonly bar = el("div", { id: "seek-bar", class: "seek-bar", title: "hover to preview, click to seek" });
  private readonly preview = el("div", { id: "storyboard-preview", class: "storyboard-preview", hidden: true });
  private readonly time = el("span", { class: "storyboard-time" });
  private cues: StoryboardCue[] = [];
  private url = "";
  private total = 0; // the video's duration from its document (a live stream's <video> may not know it yet)

  constructor(private readonly video: HTMLVideoElement) {
    this.preview.append(this.time);
    this.root = el("div", { class: "storyboard", hidden: true }, this.preview, this.bar);
    this.bar.addEventListener("mousemove", (e) => this.show(this.timeAt(e)));
    this.bar.addEventListener("mouseleave", () => (this.preview.hidden = true));
    this.bar.addEventListener("click", (e) => (this.video.currentTime = this.timeAt(e)));
  }

  /** Load the storyboard once the document names it; `duration` is the document's. */
  async load(url: string, duration: number): Promise<void> {
    this.total = duration;
    if (url === this.url) return;
    this.url = url;
    const res = await fetch(url);
    if (!res.ok) return;
    this.cues = parseStoryboard(await res.text(), url);
    this.root.hidden = this.cues.length === 0;
    this.root.dataset.cues = String(this.cues.length);
  }

  private duration(): number {
    return this.total > 0 ? this.total : (this.cues[this.cues.length - 1]?.end ?? 0);
  }

  private timeAt(e: MouseEvent): number {
    const box = this.bar.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (e.clientX - box.left) / Math.max(1, box.width)));
    return frac * this.duration();
  }

  private show(t: number): void {
    const cue = cueAt(this.cues, t);
    if (!cue) return;
    const box = this.bar.getBoundingClientRect();
    const left = (t / Math.max(0.001, this.duration())) * box.width - cue.w / 2;
    Object.assign(this.preview.style, {
      width: `${cue.w}px`,
      height: `${cue.h}px`,
      left: `${Math.min(Math.max(0, left), Math.max(0, box.width - cue.w))}px`,
      backgroundImage: `url("${cue.image}")`,
      backgroundPosition: `-${cue.x}px -${cue.y}px`,
    });
    this.preview.dataset.image = cue.image;
    this.preview.dataset.xywh = `${cue.x},${cue.y},${cue.w},${cue.h}`;
    this.time.textContent = `${t.toFixed(1)}s`;
    this.preview.hidden = false;
  }
}
