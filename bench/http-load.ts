/**
 * A closed-loop HTTP load generator for bench:search, run as its own process so that the client's
 * work is not charged to the API's event loop (as pgbench is its own process on the SQL side).
 * Input (JSON on argv[2]): { url, apiKey, bodies, concurrency, seconds }. Output: JSON on stdout.
 */
import { Agent, request } from "node:http";

interface Input {
  url: string;
  apiKey: string;
  bodies: unknown[];
  concurrency: number;
  seconds: number;
}

const input = JSON.parse(process.argv[2] ?? "{}") as Input;
// node:http with keep-alive rather than fetch: undici's fetch costs several times the CPU per
// request, and on a 2-core machine the client's CPU is taken from the server it measures.
const agent = new Agent({ keepAlive: true, maxSockets: input.concurrency });
const headers = { Authorization: `Bearer ${input.apiKey}`, "Content-Type": "application/json" };
const bodies = input.bodies.map((body) => JSON.stringify(body));

function post(body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      input.url,
      { method: "POST", agent, headers: { ...headers, "Content-Length": Buffer.byteLength(body) } },
      (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

let completed = 0;
let errors = 0;
const latencies: number[] = [];
const deadline = performance.now() + input.seconds * 1000;
await Promise.all(
  Array.from({ length: input.concurrency }, async (_, worker) => {
    for (let i = worker; performance.now() < deadline; i += input.concurrency) {
      const started = performance.now();
      const status = await post(bodies[i % bodies.length] ?? "{}").catch(() => 0);
      if (status === 200) completed++;
      else errors++;
      latencies.push(performance.now() - started);
    }
  }),
);
agent.destroy();
process.stdout.write(JSON.stringify({ completed, errors, latencies }));
