/** The `wavemoe` command: one file per subcommand, this one only wires them together. */
import { Command } from 'commander';
import { evalCommand } from './commands/eval';
import { generateCommand } from './commands/generate';
import { infoCommand } from './commands/info';
import { trainCommand } from './commands/train';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('wavemoe')
    .description('train and run small mixture-of-experts language models')
    .addCommand(trainCommand())
    .addCommand(generateCommand())
    .addCommand(evalCommand())
    .addCommand(infoCommand());
  // Every CLI error is one line on stderr: commander's suggestion ("\n(Did you mean --steps?)") and the usage hint
  // join the message's line. Added commands do not inherit output settings, so each gets them.
  for (const command of [program, ...program.commands]) {
    command.configureOutput({ outputError: (str, write) => write(`${str.trim().replace(/\s*\n\s*/g, ' ')} (run with --help for usage)\n`) });
  }
  await program.parseAsync(argv);
}
