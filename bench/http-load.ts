/**
 * A closed-loop HTTP load generator for bench:search, run as its own process so that the client's
 * work is not charged to the API's event loop (as pgbench is its own process on the SQL side).
 * Input (JSON on argv[2]): { url, apiKey, bodies, concurrency, seconds }. Output: JSON on stdout.
 */
interface Input {
  url: string;
  apiKey: string;
  bodies: unknown[];
  concurrency: number;
  seconds: number;
}

const input = JSON.parse(process.argv[2] ?? "{}") as Input;
let completed = 0;
let errors = 0;
const latencies: number[] = [];
const deadline = performance.now() + input.seconds * 1000;
await Promise.all(
  Array.from({ length: input.concurrency }, async (_, worker) => {
    for (let i = worker; performance.now() < deadline; i += input.concurrency) {
      const started = performance.now();
      const response = await fetch(input.url, {
        method: "POST",
        headers: { Authorization: `Bearer ${input.apiKey}`, "Content-Type": "application/json" },
        body: JSON.stringify(input.bodies[i % input.bodies.length]),
      });
      await response.arrayBuffer();
      if (response.status === 200) completed++;
      else errors++;
      latencies.push(performance.now() - started);
    }
  }),
);
process.stdout.write(JSON.stringify({ completed, errors, latencies }));
