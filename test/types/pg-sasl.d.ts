// pg's SCRAM client, which pg ships without types; the compose unit test logs in with it.
declare module "pg/lib/crypto/sasl.js" {
  interface Session {
    clientNonce: string;
    response: string;
  }
  const sasl: {
    startSession(mechanisms: string[]): Session;
    continueSession(session: Session, password: string, serverData: string): Promise<void>;
    finalizeSession(session: Session, serverData: string): void;
  };
  export default sasl;
}
