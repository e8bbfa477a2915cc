// The stream player: hls.js on a <video>, a quality menu driven by `qualityLevels`, and an
// automatic upgrade to the best ready quality that keeps the playback position.
import Hls, { Events, type Level } from "hls.js";
import { bestPlayable, menuEntries, needsNewSession, qualityName, type MenuEntry, type QualityLevels } from "./quality";
import { el } from "./ui";

export class StreamPlayer {
  readonly root: HTMLElement;
  readonly video = el("video", { id: "player", controls: true, muted: true, playsinline: true });
  private readonly menu = el("div", { id: "quality-menu", class: "row" });
  private readonly status = el("p", { id: "player-status", text: "no stream yet" });
  private hls: Hls | null = null;
  private src = "";
  private qualities: QualityLevels = {};
  private playableAtStart = new Set<string>(); // qualities with real pictures when the session began
  private choice = "best"; // "best" follows the best quality with real pictures, or a quality name
  private sessions = 0;

  constructor() {
    this.root = el("div", { class: "player" }, this.video, el("div", { class: "row" }, "Quality:", this.menu), this.status);
    setInterval(() => this.showStatus(), 250);
  }

  /** Attach to a stream (first call) and give the latest `qualityLevels`. */
  update(masterUrl: string, qualities: QualityLevels): void {
    this.qualities = qualities;
    if (masterUrl !== this.src) {
      this.src = masterUrl;
      this.startSession(0, true);
      return;
    }
    if (this.sessionIsStale()) {
      // keep the position and whether it was playing
      this.startSession(this.video.currentTime, !this.video.paused);
      return;
    }
    this.renderMenu();
  }

  /** The quality to show became ready after this session loaded its (mirror) playlist. */
  private sessionIsStale(): boolean {
    const entries = this.entries();
    if (this.choice === "best") return needsNewSession(this.playableAtStart, entries);
    const wanted = entries.find((e) => e.name === this.choice);
    return wanted !== undefined && wanted.ready && !this.playableAtStart.has(this.choice);
  }

  private entries(): MenuEntry[] {
    return this.hls ? menuEntries(this.hls.levels, this.qualities) : [];
  }

  private startSession(position: number, play: boolean): void {
    this.hls?.destroy();
    this.sessions += 1;
    if (position > 0) this.status.dataset.resumedAt = position.toFixed(3);
    this.playableAtStart = new Set(
      Object.entries(this.qualities)
        .filter(([, q]) => q.status === "ready" || (q.live === true && q.status === "encoding"))
        .map(([name]) => name),
    );
    if (!Hls.isSupported()) {
      this.video.src = this.src; // Safari plays HLS natively
      return;
    }
    const hls = new Hls({ startPosition: position > 0 ? position : -1 });
    this.hls = hls;
    hls.on(Events.MANIFEST_PARSED, () => {
      this.applyChoice();
      this.renderMenu();
      if (play) void this.video.play().catch(() => undefined);
    });
    hls.on(Events.LEVEL_SWITCHED, () => this.renderMenu());
    hls.on(Events.ERROR, (_e, data) => {
      if (data.fatal) this.status.textContent = `playback error: ${data.details}`;
    });
    hls.loadSource(this.src);
    hls.attachMedia(this.video);
  }

  /** Pin the chosen quality ("best": the best one with real pictures; none yet: hls.js picks). */
  private applyChoice(): void {
    if (!this.hls) return;
    const entries = this.entries();
    const pick = this.choice === "best" ? bestPlayable(entries) : (entries.find((e) => e.name === this.choice) ?? null);
    this.hls.currentLevel = pick ? pick.index : -1;
  }

  private choose(choice: string): void {
    this.choice = choice;
    if (this.sessionIsStale()) {
      this.startSession(this.video.currentTime, !this.video.paused);
      return;
    }
    this.applyChoice();
    this.renderMenu();
  }

  private renderMenu(): void {
    const entries = this.entries();
    const playing = this.playingLevel();
    const best = el("button", { type: "button", class: this.choice === "best" ? "active" : "" }, "Best ready");
    best.addEventListener("click", () => this.choose("best"));
    const items = entries.map((e) => {
      const b = el(
        "button",
        {
          type: "button",
          "data-quality": e.name,
          "data-ready": e.ready,
          class: [this.choice === e.name ? "active" : "", e.ready ? "" : "processing"].join(" ").trim(),
          title: e.ready ? "" : "still encoding: until it is ready this quality plays lower-resolution pictures",
        },
        e.label + (playing && qualityName(playing) === e.name ? " ▶" : ""),
      );
      b.addEventListener("click", () => this.choose(e.name));
      return b;
    });
    this.menu.replaceChildren(best, ...items);
  }

  private playingLevel(): Level | null {
    const hls = this.hls;
    return hls && hls.currentLevel >= 0 ? (hls.levels[hls.currentLevel] ?? null) : null;
  }

  private showStatus(): void {
    if (!this.src) return;
    const level = this.playingLevel();
    const picture = this.video.videoWidth ? `${this.video.videoWidth}x${this.video.videoHeight}` : "-";
    this.status.textContent =
      `level ${level ? qualityName(level) : "auto"} | picture ${picture} | ` +
      `t=${this.video.currentTime.toFixed(1)}s | session ${this.sessions}` +
      (this.video.ended ? " | ended" : "");
    this.status.dataset.picture = picture;
    this.status.dataset.level = level ? qualityName(level) : "";
    this.status.dataset.sessions = String(this.sessions);
  }
}
