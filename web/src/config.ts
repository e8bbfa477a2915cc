// Where the app finds Firebase. On the local stack the page is served with
// /__/local-stack.json (the Firebase config plus every emulator's address, read at run
// time so one build works against any stack); on Firebase Hosting, /__/firebase/init.json
// gives the production config and no emulator is used.
import type { FirebaseOptions } from "firebase/app";

export interface HostPort {
  host: string;
  port: number;
}

export interface AppConfig {
  firebase: FirebaseOptions & { projectId: string; storageBucket: string };
  functionsRegion: string;
  emulators: {
    firestore: HostPort;
    auth: string; // URL, e.g. http://127.0.0.1:9099
    storage: HostPort;
    functions: HostPort;
  } | null;
  localStack: {
    firestore: "official" | "npm" | "external";
    webSdkFirestore: boolean;
    storageRulesEvaluated: boolean;
  } | null;
}

export async function loadConfig(): Promise<AppConfig> {
  const local = await fetch("/__/local-stack.json");
  if (local.ok) return (await local.json()) as AppConfig;
  const hosting = await fetch("/__/firebase/init.json");
  if (!hosting.ok) throw new Error("no Firebase config: serve the app from the local stack or Firebase Hosting");
  return {
    firebase: (await hosting.json()) as AppConfig["firebase"],
    functionsRegion: "us-central1",
    emulators: null,
    localStack: null,
  };
}
