# Wait far longer than any test does: only a shutdown (or stop) ends it.
echo "SLEEPING"
sleep 3600
