// Sign-in: anonymous, or email and password (sign in, or create the account).
import {
  createUserWithEmailAndPassword,
  onAuthStateChanged,
  signInAnonymously,
  signInWithEmailAndPassword,
  signOut,
  type User,
} from "firebase/auth";
import type { Services } from "./firebase";
import { button, describeError, el, section } from "./ui";

export function authPanel(svc: Services, onUser: (user: User | null) => void): HTMLElement {
  const root = section("Sign in", "auth");
  const who = el("p", { id: "who", text: "Not signed in." });
  const error = el("p", { id: "auth-error", class: "error" });
  const email = el("input", { id: "email", type: "email", placeholder: "email", autocomplete: "username" });
  const password = el("input", {
    id: "password",
    type: "password",
    placeholder: "password (6+ characters)",
    autocomplete: "current-password",
  });

  async function attempt(action: () => Promise<unknown>): Promise<void> {
    error.textContent = "";
    try {
      await action();
    } catch (err) {
      error.textContent = describeError(err);
    }
  }

  // a form, so password managers and the browser treat the fields as a sign-in
  const signedOut = el(
    "form",
    { class: "row" },
    button("Sign in anonymously", () => attempt(() => signInAnonymously(svc.auth)), { id: "sign-in-anonymous" }),
    email,
    password,
    button("Sign in", () => attempt(() => signInWithEmailAndPassword(svc.auth, email.value, password.value)), {
      id: "sign-in-email",
    }),
    button(
      "Create account",
      () => attempt(() => createUserWithEmailAndPassword(svc.auth, email.value, password.value)),
      { id: "sign-up-email" },
    ),
  );
  signedOut.addEventListener("submit", (e) => e.preventDefault());
  const signedIn = el("div", { class: "row" }, button("Sign out", () => signOut(svc.auth), { id: "sign-out" }));
  root.append(who, signedOut, signedIn, error);

  onAuthStateChanged(svc.auth, (user) => {
    signedOut.hidden = user !== null;
    signedIn.hidden = user === null;
    who.textContent = user
      ? `Signed in as ${user.email ?? "an anonymous user"} (uid ${user.uid})`
      : "Not signed in.";
    who.dataset.uid = user?.uid ?? "";
    onUser(user);
  });
  return root;
}
