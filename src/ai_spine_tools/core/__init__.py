"""A tool: declaration, metadata, context, results, config, execution in threads or processes."""
