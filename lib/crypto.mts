// sha256 and random names through Web Crypto (globalThis.crypto), which Bun
// and Node both have built in: importing node:crypto costs about 10 ms under
// Bun, paid by every command that loads it, a cold pull of a small image
// among them (README, "OCI images, measured").

/** sha256 of text or bytes, as lowercase hex. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

/** count random bytes as hex: a suffix that keeps names of scratch files and directories apart. */
export function randomHex(count: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(count))).toString('hex');
}
