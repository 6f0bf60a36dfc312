"""The tool itself: declaration, metadata, context, results, config, validation, execution."""
