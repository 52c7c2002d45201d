"""The `cmlite` command and its commands, one module each (camera/, reports/ and serve/ are rooms of their own)."""
