// The quality menu's logic, kept pure: which qualities the stream has, which can be
// played, and when the player needs a new session. `qualityLevels` comes from
// videos/{videoId} (docs/streaming.md); levels come from the master playlist, which
// declares every quality from the start.

export interface QualityDoc {
  status: "waiting" | "encoding" | "ready" | "failed";
  live?: boolean; // the rendition encoded live: its segments are real while it encodes
}

export type QualityLevels = Record<string, QualityDoc>;

export interface LevelInfo {
  width: number;
  height: number;
}

export interface MenuEntry {
  index: number; // the hls.js level index
  name: string; // "1080p"
  ready: boolean; // every segment of this quality is its own
  playable: boolean; // ready, or the live rendition while it encodes
  label: string; // "1080p" or "1080p (processing)"
}

/** "1080p" for a 1920x1080 or a 1080x1920 level: the short side names the quality. */
export function qualityName(level: LevelInfo): string {
  return `${Math.min(level.width, level.height)}p`;
}

export function menuEntries(levels: LevelInfo[], qualities: QualityLevels): MenuEntry[] {
  return levels
    .map((level, index) => {
      const name = qualityName(level);
      const q = qualities[name];
      const ready = q?.status === "ready";
      const playable = ready || (q?.live === true && q.status === "encoding");
      let label = name;
      if (q?.status === "failed") label = `${name} (failed)`;
      else if (!ready) label = q?.live ? `${name} (processing, live)` : `${name} (processing)`;
      return { index, name, ready, playable, label };
    })
    .sort((a, b) => parseInt(b.name) - parseInt(a.name));
}

/** The best quality with real pictures now, or null while there is none. */
export function bestPlayable(entries: MenuEntry[]): MenuEntry | null {
  return entries.find((e) => e.playable) ?? null;
}

/**
 * Whether the playing session must be replaced to show a quality that became ready.
 *
 * A session that loaded the master while 1080p was processing plays the 1080p *mirror*
 * (720p pictures under the 1080p name) for its whole life: hls.js never reloads an ended
 * playlist. Only a new session reads the real 1080p playlist. So when a background
 * quality better than what the session could play becomes ready, the player starts a new
 * session at the same position. The live rendition never needs one: its playlist is real.
 */
export function needsNewSession(playableAtStart: Set<string>, entries: MenuEntry[]): boolean {
  const best = bestPlayable(entries);
  return best !== null && best.ready && !playableAtStart.has(best.name);
}
