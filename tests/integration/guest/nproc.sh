echo "NPROC=$(nproc)"
