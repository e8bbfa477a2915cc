// Creations and tokens: the balance, a creation from create to publish, the drafts list,
// and the "not enough tokens" answer (docs/creations.md).
import type { User } from "firebase/auth";
import { doc, onSnapshot, type DocumentData, type Unsubscribe } from "firebase/firestore";
import { FunctionsError, httpsCallable } from "firebase/functions";
import type { Services } from "./firebase";
import { button, describeError, el, ProgressBar, section } from "./ui";

interface Creation {
  id: string;
  status: string;
  prompt: string;
  progress?: number;
  mediaUrl?: string | null;
  thumbnailUrl?: string | null;
  error?: { code: string; message: string } | null;
}

interface CreateResult {
  creationId: string;
  cost: number;
  balance?: number;
}

interface InsufficientTokens {
  reason: "insufficient-tokens";
  required: number;
  balance: number;
}

/** What to tell the user when a callable refuses. */
export function creationErrorText(err: unknown): string {
  if (err instanceof FunctionsError) {
    const details = err.details as Partial<InsufficientTokens> | undefined;
    if (details?.reason === "insufficient-tokens") {
      return `Not enough tokens: this creation costs ${details.required} tokens and your balance is ${details.balance}.`;
    }
    return err.message;
  }
  return describeError(err);
}

export class CreationsPanel {
  readonly root = section("Creations and tokens", "creations");
  private user: User | null = null;
  private unwatchBalance: Unsubscribe | null = null;
  private readonly balance = el("p", { id: "balance", text: "Balance: -" });
  private readonly prompt = el("input", { id: "creation-prompt", value: "A paper boat on a rainy street" });
  private readonly duration = el(
    "select",
    { id: "creation-duration" },
    el("option", { value: "4" }, "4 s (40 tokens)"),
    el("option", { value: "6" }, "6 s (60 tokens)"),
    el("option", { value: "8" }, "8 s (80 tokens)"),
  );
  private readonly message = el("p", { id: "creation-message" });
  private readonly current = el("div", { id: "creation-current" });
  private readonly drafts = el("ul", { id: "drafts" });
  private readonly buttons: HTMLButtonElement[];

  constructor(private readonly svc: Services) {
    this.buttons = [
      button("Create", () => this.create(), { id: "create-creation" }),
      button("Refresh drafts", () => this.refreshDrafts(), { id: "refresh-drafts" }),
    ];
    const grant = svc.config.emulators
      ? button("Add 100 tokens (local stack only)", () => this.grant(100), { id: "grant-tokens" })
      : null;
    if (grant) this.buttons.push(grant);
    this.root.append(
      this.balance,
      el("div", { class: "row" }, this.prompt, this.duration, ...this.buttons),
      this.message,
      this.current,
      el("h3", { text: "Drafts" }),
      this.drafts,
    );
    this.setUser(null);
  }

  setUser(user: User | null): void {
    this.user = user;
    for (const b of this.buttons) b.disabled = user === null;
    this.unwatchBalance?.();
    this.unwatchBalance = null;
    this.balance.textContent = "Balance: -";
    this.drafts.replaceChildren();
    if (!user) return;
    this.unwatchBalance = onSnapshot(
      doc(this.svc.db, "users", user.uid),
      (snap) => {
        const tokens = Number(snap.data()?.balance ?? 0);
        this.balance.textContent = `Balance: ${tokens} tokens`;
        this.balance.dataset.balance = String(tokens);
      },
      (err) => (this.balance.textContent = `Balance: ${describeError(err)}`),
    );
    void this.refreshDrafts();
  }

  private async create(): Promise<void> {
    this.message.textContent = "";
    this.message.className = "";
    const call = httpsCallable<object, CreateResult>(this.svc.functions, "createvideogeneration");
    try {
      const { data } = await call({ prompt: this.prompt.value, duration: Number(this.duration.value), aspectRatio: "16:9" });
      this.message.textContent = `Creation ${data.creationId} accepted: ${data.cost} tokens.`;
      this.follow(data.creationId);
    } catch (err) {
      this.message.textContent = creationErrorText(err);
      this.message.className = "error";
      this.message.dataset.code = err instanceof FunctionsError ? err.code : "";
    }
  }

  private follow(id: string): void {
    const bar = new ProgressBar();
    const actions = el("div", { class: "row" });
    const card = el("div", { class: "card creation", "data-creation-id": id }, el("code", { text: id }), bar.root, actions);
    this.current.replaceChildren(card);
    const stop = onSnapshot(doc(this.svc.db, "creations", id), (snap) => {
      const c = { id, ...(snap.data() as DocumentData) } as Creation;
      card.dataset.status = c.status;
      const done = c.status === "draft" || c.status === "published" || c.status === "failed";
      bar.set(done ? 100 : Number(c.progress ?? 0), c.error ? `${c.status}: ${c.error.code}` : c.status);
      actions.replaceChildren();
      if (c.mediaUrl) actions.append(el("video", { src: c.mediaUrl, controls: true, muted: true, class: "result" }));
      if (c.status === "draft") actions.append(button("Publish", () => this.publish(id), { class: "publish" }));
      if (c.status === "failed" || c.status === "published") stop();
      if (done) void this.refreshDrafts();
    });
  }

  private async publish(id: string): Promise<void> {
    try {
      await httpsCallable(this.svc.functions, "publishcreation")({ creationId: id });
      this.message.textContent = `Published: feed/${id}`;
    } catch (err) {
      this.message.textContent = creationErrorText(err);
      this.message.className = "error";
    }
  }

  private async refreshDrafts(): Promise<void> {
    if (!this.user) return;
    const call = httpsCallable<object, { creations: Creation[] }>(this.svc.functions, "listdrafts");
    try {
      const { data } = await call({ limit: 20 });
      this.drafts.replaceChildren(
        ...data.creations.map((c) => el("li", { "data-status": c.status }, `${c.status}: ${c.prompt} (${c.id})`)),
      );
      if (!data.creations.length) this.drafts.append(el("li", { text: "no drafts yet" }));
    } catch (err) {
      this.drafts.replaceChildren(el("li", { class: "error", text: creationErrorText(err) }));
    }
  }

  /** Local stack only: tokens through the backend's ledger, as a purchase would add them. */
  private async grant(amount: number): Promise<void> {
    if (!this.user) return;
    const r = await fetch("/__/local-stack/grant", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ uid: this.user.uid, amount }),
    });
    if (!r.ok) this.message.textContent = `grant failed: ${r.status}`;
  }
}
