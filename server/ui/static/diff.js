// A word diff between two versions of a block: the longest common subsequence of words and spaces,
// after the common start and end are set aside (an edit usually touches one place).

const MAX_CELLS = 4_000_000; // beyond this the table would be slow: compare lines instead of words

/** [{kind: "same" | "removed" | "added", text}], neighbours of one kind merged. */
export function diff(before, after) {
  let ops = compare(words(before), words(after));
  if (ops === null) ops = compare(lines(before), lines(after));
  if (ops === null) ops = [{ kind: "removed", text: before }, { kind: "added", text: after }];
  return merge(ops);
}

function words(text) {
  return text.match(/\s+|[^\s]+/gu) || [];
}

function lines(text) {
  return text.match(/[^\n]*\n|[^\n]+$/gu) || [];
}

function compare(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) return null;
  // lengths[i * (m + 1) + j]: the longest common subsequence of midA[i:] and midB[j:]
  const lengths = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lengths[i * (m + 1) + j] =
        midA[i] === midB[j]
          ? lengths[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(lengths[(i + 1) * (m + 1) + j], lengths[i * (m + 1) + j + 1]);
    }
  }
  const ops = a.slice(0, start).map((text) => ({ kind: "same", text }));
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && midA[i] === midB[j]) {
      ops.push({ kind: "same", text: midA[i++] });
      j++;
    } else if (j < m && (i === n || lengths[i * (m + 1) + j + 1] >= lengths[(i + 1) * (m + 1) + j])) {
      ops.push({ kind: "added", text: midB[j++] });
    } else {
      ops.push({ kind: "removed", text: midA[i++] });
    }
  }
  for (const text of a.slice(endA)) ops.push({ kind: "same", text });
  return ops;
}

function merge(ops) {
  const merged = [];
  for (const op of ops) {
    const previous = merged[merged.length - 1];
    if (previous && previous.kind === op.kind) previous.text += op.text;
    else if (op.text) merged.push({ ...op });
  }
  return merged;
}
