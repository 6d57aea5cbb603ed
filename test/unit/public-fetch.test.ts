import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { mayFetchFrom, PrivateAddressError, publicOnlyFetch } from "../../src/tenancy/public-fetch.ts";

describe("fetching a tenant's URL", () => {
  it("refuses this machine and private networks, IPv4, IPv6 and IPv4 written as IPv6", () => {
    for (const address of [
      "127.0.0.1",
      "10.0.0.1",
      "172.20.1.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "::1",
      "::",
      "fd00::1",
      "fe80::1",
      "::ffff:10.0.0.1",
      "::ffff:127.0.0.1",
    ]) {
      expect(mayFetchFrom(address, false), address).toBe(false);
    }
    for (const address of ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) {
      expect(mayFetchFrom(address, false), address).toBe(true);
    }
    expect(mayFetchFrom("127.0.0.1", true)).toBe(true);
    expect(mayFetchFrom("::1", true)).toBe(true);
    expect(mayFetchFrom("10.0.0.1", true)).toBe(false);
  });

  it("checks the address a name resolves to when it connects, and an address in the URL before", async () => {
    const server = createServer((_, response) => response.end('{"keys":[]}'));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const strict = publicOnlyFetch(false);
      await expect(strict(`http://127.0.0.1:${port}/`)).rejects.toBeInstanceOf(PrivateAddressError);
      // localhost resolves to 127.0.0.1: refused at connect time, the cause says why.
      const error = await strict(`http://localhost:${port}/`).catch((e: unknown) => e);
      expect((error as Error).cause).toBeInstanceOf(PrivateAddressError);
      expect(((error as Error).cause as Error).message).toMatch(/localhost resolves to 127\.0\.0\.1/);
      // Allowed for development: the same URL is fetched.
      const response = await publicOnlyFetch(true)(`http://localhost:${port}/`);
      expect(await response.json()).toEqual({ keys: [] });
    } finally {
      server.close();
    }
  });
});
