import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

/**
 * A PostgreSQL SCRAM-SHA-256 verifier (RFC 5802/7677), the form pg_authid stores. A role created with
 * this string as its password stores it unchanged, so PgBouncer's auth file can hold the very same
 * verifier: it authenticates clients and logs into the server with the client's proof (SCRAM pass-
 * through) without any plaintext password on disk. The password must be ASCII (no SASLprep here).
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  if (!/^[\x20-\x7e]+$/.test(password)) throw new Error("SCRAM verifier: the password must be printable ASCII");
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest();
  const storedKey = createHash("sha256").update(hmac(salted, "Client Key")).digest();
  const serverKey = hmac(salted, "Server Key");
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}
