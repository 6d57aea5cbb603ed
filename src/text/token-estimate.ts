const TOKEN_PATTERN = /[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;

/**
 * An estimate of BPE tokens (about four characters of a word per token, one per punctuation mark),
 * close enough for budgeting without shipping a model-specific vocabulary.
 */
export function estimateTokens(text: string): number {
  let tokens = 0;
  for (const match of text.matchAll(TOKEN_PATTERN)) tokens += Math.max(1, Math.ceil(match[0].length / 4));
  return tokens;
}
