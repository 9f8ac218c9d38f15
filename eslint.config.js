import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Imports a module of Temporal's workflow sandbox must not make (Node built-ins, Node-only modules). */
function sandboxOnly(forbidden) {
  return {
    patterns: [{
      regex: forbidden,
      allowTypeImports: true,
      message: 'workflow code may import values only from workflows/, lib/workflow-safe/ and @temporalio/workflow|common',
    }],
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: beside its own folder it may import values only from
    // lib/workflow-safe and Temporal's workflow packages; types come from anywhere.
    files: ['workflows/**/*.ts'],
    rules: {
      // Workflow functions stay short: state and bookkeeping belong in plain classes (workflows/mirror-state.ts).
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }],
      '@typescript-eslint/no-restricted-imports': ['error', sandboxOnly('^(?!\\./|\\.\\./lib/workflow-safe/|@temporalio/(workflow|common)$)')],
    },
  },
  {
    files: ['lib/workflow-safe/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', sandboxOnly('^(?!\\./|@temporalio/common$)')] },
  },
  { files: ['**/*.js'], extends: [tseslint.configs.disableTypeChecked] },
);
