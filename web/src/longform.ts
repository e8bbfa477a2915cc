// Long-form video: a list of prompts becomes one video, one segment at a time
// (docs/longform.md). Started by a callable, followed on videoJobs/{jobId}.
import type { User } from "firebase/auth";
import { doc, onSnapshot } from "firebase/firestore";
import { httpsCallable } from "firebase/functions";
import type { Services } from "./firebase";
import { button, describeError, el, ProgressBar, section } from "./ui";

export class LongformPanel {
  readonly root = section("Long-form video", "longform");
  private readonly prompts = el("textarea", { id: "longform-prompts", rows: 3 });
  private readonly start = button("Start", () => this.run(), { id: "start-longform" });
  private readonly bar = new ProgressBar({ id: "longform-progress" });
  private readonly result = el("div", { id: "longform-result" });

  constructor(private readonly svc: Services) {
    this.prompts.value = "A paper boat sets off\nIt drifts past shop windows\nIt reaches a canal";
    this.bar.set(0, "not started");
    this.root.append(
      el("p", { class: "hint", text: "One prompt per line; each segment starts from the last frame of the one before." }),
      this.prompts,
      el("div", { class: "row" }, this.start),
      this.bar.root,
      this.result,
    );
    this.setUser(null);
  }

  setUser(user: User | null): void {
    this.start.disabled = user === null;
  }

  private async run(): Promise<void> {
    const prompts = this.prompts.value.split("\n").map((p) => p.trim()).filter(Boolean);
    const call = httpsCallable<object, { jobId: string }>(this.svc.functions, "triggerlongformvideojob");
    this.result.replaceChildren();
    try {
      const { data } = await call({ prompts, segmentSeconds: 2 });
      const stop = onSnapshot(doc(this.svc.db, "videoJobs", data.jobId), (snap) => {
        const job = snap.data();
        if (!job) return;
        const segments = (job.segments as unknown[] | undefined)?.length ?? 0;
        this.bar.set(Number(job.progress ?? 0), `${job.status}: ${segments}/${prompts.length} segments`);
        this.root.dataset.status = String(job.status);
        if (job.status === "completed") {
          this.result.replaceChildren(el("video", { src: String(job.finalUrl), controls: true, muted: true, class: "result" }));
        }
        if (job.status === "failed") {
          const error = job.error as { code: string; message: string };
          this.result.replaceChildren(el("p", { class: "error", text: `${error.code}: ${error.message}` }));
        }
        if (job.status === "completed" || job.status === "failed") stop();
      });
    } catch (err) {
      this.result.replaceChildren(el("p", { class: "error", text: describeError(err) }));
    }
  }
}
