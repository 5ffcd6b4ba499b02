// The fenced code blocks of a Markdown file, each with the file it must equal: the README names it
// in an HTML comment on the line before the fence (`<!-- file: examples/readme/usage.ts -->`),
// invisible when rendered.
export interface CodeBlock {
  language: string;
  /** The block's text, lines joined with '\n', ending with '\n'. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The file the block must equal, relative to the repository root, or null when none is named. */
  file: string | null;
}

const FENCE = /^```(\S*)\s*$/;
const MARKER = /^<!-- file: (\S+) -->$/;

export function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && line === '```');
    if (end < 0) throw new Error(`unclosed code block at line ${i + 1}`);
    const marker = i > 0 ? MARKER.exec(lines[i - 1]) : null;
    blocks.push({ language: open[1], text: lines.slice(i + 1, end).map((l) => `${l}\n`).join(''), line: i + 1, file: marker ? marker[1] : null });
    i = end;
  }
  return blocks;
}
