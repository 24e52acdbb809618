// As @actions/core does: the file must exist before it is written.
const fs = require('fs');
for (const v of ['GITHUB_OUTPUT', 'GITHUB_ENV', 'GITHUB_PATH', 'GITHUB_STATE', 'GITHUB_STEP_SUMMARY']) {
  if (!fs.existsSync(process.env[v])) {
    console.error(`Missing file at path: ${process.env[v]}`);
    process.exit(1);
  }
}
const who = process.env['INPUT_WHO-TO-GREET'];
fs.appendFileSync(process.env.GITHUB_OUTPUT, `greeting=Hello ${who}\n`);
console.log(`main: hello ${who}, state ${process.env.STATE_token}`);
