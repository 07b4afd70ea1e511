# evmpp on Ray's image: the Ray version must equal the chart's rayVersion. Every package of
# the project is copied (pyproject.toml's packages.find), so `evmpp serve` and the Compute
# Units' workers import the same code on the head and on the worker pods.
FROM rayproject/ray:2.60.0-py311
WORKDIR /opt/evmpp
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users api ./api
COPY --chown=ray:users bench ./bench
COPY --chown=ray:users chain ./chain
COPY --chown=ray:users cli ./cli
COPY --chown=ray:users cluster ./cluster
COPY --chown=ray:users compute_unit ./compute_unit
COPY --chown=ray:users coordinator ./coordinator
COPY --chown=ray:users ebs ./ebs
COPY --chown=ray:users storage ./storage
RUN pip install --no-cache-dir . \
    && python -c "from bench.workload.contracts import compiled; [compiled(n) for n in ('token', 'pair', 'nft')]"
EXPOSE 8545 8265 8080
