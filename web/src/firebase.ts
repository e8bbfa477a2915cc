// One Firebase app and its services, pointed at the emulators when the config names them.
import { initializeApp, type FirebaseApp } from "firebase/app";
import { connectAuthEmulator, getAuth, type Auth } from "firebase/auth";
import { connectFirestoreEmulator, getFirestore, type Firestore } from "firebase/firestore";
import { connectFunctionsEmulator, getFunctions, type Functions } from "firebase/functions";
import { connectStorageEmulator, getStorage, type FirebaseStorage } from "firebase/storage";
import type { AppConfig } from "./config";

export interface Services {
  app: FirebaseApp;
  auth: Auth;
  db: Firestore;
  storage: FirebaseStorage;
  functions: Functions;
  config: AppConfig;
}

export function connect(config: AppConfig): Services {
  const app = initializeApp(config.firebase);
  const auth = getAuth(app);
  const db = getFirestore(app);
  const storage = getStorage(app);
  const functions = getFunctions(app, config.functionsRegion);
  const emu = config.emulators;
  if (emu) {
    connectAuthEmulator(auth, emu.auth, { disableWarnings: true });
    connectFirestoreEmulator(db, emu.firestore.host, emu.firestore.port);
    connectStorageEmulator(storage, emu.storage.host, emu.storage.port);
    connectFunctionsEmulator(functions, emu.functions.host, emu.functions.port);
  }
  return { app, auth, db, storage, functions, config };
}
