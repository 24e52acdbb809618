console.log(`post: state ${process.env.STATE_token}`);
