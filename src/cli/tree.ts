import type { Command } from 'commander';
import type { FileSystem, OpenNode } from '../client/file-system.js';
import { compareNames } from '../client/name-order.js';
import { globals, type VerbEnv } from './env.js';
import { printableName } from './output.js';

interface TreeNode {
  name: string;
  kind: 'dir' | 'file';
  size: number;
  children?: TreeNode[];
}

async function build(fs: FileSystem, node: OpenNode): Promise<TreeNode> {
  if (node.entry.kind !== 'dir') return { name: node.name, kind: 'file', size: node.entry.size };
  const kids = (await fs.childrenOf(node)).sort((a, b) => compareNames(a.name, b.name));
  return {
    name: node.name || '/',
    kind: 'dir',
    size: 0,
    children: await Promise.all(kids.map((k) => build(fs, k))),
  };
}

function draw(node: TreeNode, prefix: string, lines: string[]): void {
  const kids = node.children ?? [];
  kids.forEach((k, i) => {
    const lastOne = i === kids.length - 1;
    lines.push(`${prefix}${lastOne ? '└── ' : '├── '}${printableName(k.name)}${k.kind === 'dir' ? '/' : ''}`);
    draw(k, prefix + (lastOne ? '    ' : '│   '), lines);
  });
}

export function registerTreeCommand(program: Command, env: VerbEnv): void {
  program
    .command('tree [path]')
    .description('show a folder and everything under it')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  sedfs tree\n  sedfs tree /projects --json')
    .action((path: string | undefined, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const tree = await build(fs, await fs.resolve(path ?? '.', env.cwd));
        if (globals(cmd).json) {
          env.json(tree);
          return;
        }
        const root = printableName(tree.name);
        const lines = [tree.kind === 'dir' ? `${tree.name === '/' ? '/' : `${root}/`}` : root];
        draw(tree, '', lines);
        env.out(lines.join('\n'));
      }),
    );
}
