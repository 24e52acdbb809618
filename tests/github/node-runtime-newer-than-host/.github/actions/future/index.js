console.log(`ran on ${process.version}`);
