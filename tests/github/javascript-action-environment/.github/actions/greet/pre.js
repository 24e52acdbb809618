const fs = require('fs');
fs.appendFileSync(process.env.GITHUB_STATE, 'token=from-pre\n');
