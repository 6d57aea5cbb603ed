import { type LookupAddress, lookup } from "node:dns";
import { BlockList, isIP } from "node:net";
import { Agent, fetch } from "undici";

/**
 * Fetching a URL a tenant gave (its identity provider's keys) without letting it reach this machine
 * or a private network (server-side request forgery): every address the connection is about to use
 * is checked, after DNS — a name that resolves to an internal address, or is made to later (DNS
 * rebinding), is refused at connect time, and redirects are not followed.
 */
const PRIVATE = new BlockList();
const V4: [string, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 3],
];
const V6: [string, number][] = [
  ["::", 127],
  ["64:ff9b::", 96],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
];
for (const [network, prefix] of V4) PRIVATE.addSubnet(network, prefix, "ipv4");
for (const [network, prefix] of V6) PRIVATE.addSubnet(network, prefix, "ipv6");
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** An IPv4 address written as IPv6 (::ffff:10.0.0.1) is judged as IPv4. */
function judged(address: string): [string, "ipv4" | "ipv6"] {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return [mapped, "ipv4"];
  return [address, isIP(address) === 4 ? "ipv4" : "ipv6"];
}

export class PrivateAddressError extends Error {
  constructor(host: string, address: string) {
    super(
      `${host} resolves to ${address}, an address on this machine or a private network, which pgrag does not fetch`,
    );
    this.name = "PrivateAddressError";
  }
}

/** Whether an address may be fetched: public, or this machine's loopback when allowed. */
export function mayFetchFrom(address: string, allowLoopback: boolean): boolean {
  const [value, family] = judged(address);
  if (allowLoopback && LOOPBACK.check(value, family)) return true;
  return !PRIVATE.check(value, family);
}

/** A fetch for tenant-given URLs: only public addresses (and loopback if `allowLoopback`), no redirects. */
export function publicOnlyFetch(allowLoopback: boolean): (url: string, init?: RequestInit) => Promise<Response> {
  const agent = new Agent({
    connect: {
      lookup(hostname, options, callback) {
        lookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
          if (error) return callback(error, []);
          const refused = addresses.find((a) => !mayFetchFrom(a.address, allowLoopback));
          if (refused) return callback(new PrivateAddressError(hostname, refused.address), []);
          if (options.all) return callback(null, addresses);
          const [first] = addresses;
          return callback(null, first?.address ?? "", first?.family ?? 4);
        });
      },
    },
  });
  return async (url, init) => {
    // An address in the URL itself is connected to without a lookup: checked here.
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    if (isIP(host) && !mayFetchFrom(host, allowLoopback)) throw new PrivateAddressError(host, host);
    const response = await fetch(url, { ...(init as object), redirect: "error", dispatcher: agent });
    return response as unknown as Response;
  };
}
