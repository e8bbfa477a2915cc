// Upload a video with the Storage SDK (resumable), follow videos/{videoId}, play the stream.
//
// The Storage trigger turns uploads/{uid}/{videoId}.mp4 into HLS (docs/streaming.md): the
// document says `ready` about a second after the upload lands (720p streams live), then
// `complete` when the background qualities are encoded. The player attaches on `ready`.
import type { User } from "firebase/auth";
import { doc, onSnapshot, type Unsubscribe } from "firebase/firestore";
import { ref, uploadBytesResumable } from "firebase/storage";
import type { Services } from "./firebase";
import { StreamPlayer } from "./player";
import { StoryboardBar } from "./storyboard";
import type { QualityLevels } from "./quality";
import { button, describeError, el, ProgressBar, section } from "./ui";

export class UploadPanel {
  readonly root = section("Upload and play a video", "upload");
  private user: User | null = null;
  private readonly file = el("input", { id: "video-file", type: "file", accept: "video/*" });
  private readonly start = button("Upload", () => this.upload(), { id: "upload-video" });
  private readonly uploadBar = new ProgressBar({ id: "upload-progress" });
  private readonly videoStatus = el("p", { id: "video-status", text: "" });
  private readonly qualities = el("ul", { id: "qualities" });
  private readonly player = new StreamPlayer();
  private readonly storyboard = new StoryboardBar(this.player.video);
  private readonly download = el("a", { id: "download-link", hidden: true, download: "" }, "Download MP4");
  private watch: Unsubscribe | null = null;

  constructor(private readonly svc: Services) {
    this.uploadBar.set(0, "no upload yet");
    this.root.append(
      el("p", { class: "hint", text: "Uploaded with uploadBytesResumable to uploads/{your uid}/." }),
      el("div", { class: "row" }, this.file, this.start),
      this.uploadBar.root,
      this.videoStatus,
      this.qualities,
      this.player.root,
      this.storyboard.root,
      this.download,
    );
    this.setUser(null);
  }

  setUser(user: User | null): void {
    this.user = user;
    this.start.disabled = user === null;
  }

  private upload(): void {
    const file = this.file.files?.[0];
    if (!this.user || !file) {
      this.uploadBar.set(0, "choose a video file first");
      return;
    }
    const videoId = `web${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    this.follow(videoId); // listen before the upload lands
    const task = uploadBytesResumable(ref(this.svc.storage, `uploads/${this.user.uid}/${videoId}.mp4`), file, {
      contentType: file.type || "video/mp4",
    });
    task.on(
      "state_changed",
      (snap) => {
        const pct = (100 * snap.bytesTransferred) / Math.max(1, snap.totalBytes);
        this.uploadBar.set(pct, `uploading ${Math.round(pct)}%`);
      },
      (err) => this.uploadBar.set(0, `upload failed: ${describeError(err)}`),
      () => {
        this.uploadBar.set(100, "uploaded");
        this.uploadBar.root.dataset.done = "true";
      },
    );
  }

  private follow(videoId: string): void {
    this.watch?.();
    this.videoStatus.dataset.videoId = videoId;
    this.watch = onSnapshot(
      doc(this.svc.db, "videos", videoId),
      (snap) => {
        const data = snap.data();
        if (!data) return;
        const status = String(data.status);
        const error = data.error as { code: string; message: string } | null;
        this.videoStatus.dataset.status = status;
        this.videoStatus.textContent = error
          ? `video ${videoId}: ${status} (${error.code}: ${error.message})`
          : `video ${videoId}: ${status}`;
        const levels = (data.qualityLevels ?? {}) as QualityLevels;
        this.qualities.replaceChildren(
          ...Object.entries(levels)
            .sort(([a], [b]) => parseInt(a) - parseInt(b))
            .map(([name, q]) => el("li", { "data-quality": name, "data-status": q.status }, `${name}: ${q.status}`)),
        );
        if ((status === "ready" || status === "complete") && data.masterPlaylistUrl) {
          this.player.update(String(data.masterPlaylistUrl), levels);
        }
        // background assets: each appears once its own status is ready
        if (data.storyboardUrl) void this.storyboard.load(String(data.storyboardUrl), Number(data.duration ?? 0)).catch(() => undefined);
        if (data.downloadUrl) {
          const d = (data.download ?? {}) as { quality?: string };
          this.download.href = String(data.downloadUrl);
          this.download.textContent = `Download MP4 (${d.quality ?? "720p"})`;
          this.download.hidden = false;
        }
      },
      (err) => (this.videoStatus.textContent = describeError(err)),
    );
  }
}
